"""The predictive score: a model trained on this database's own history, proved by a
time-based backtest against the rule score before it is used.

- `config`: the label, its window, the minimum-data gate (config/predictive.yaml);
- `features`: each lead's features as they were at a prediction date (nothing after it);
- `outcomes`: the label, from escalations, rep activities and CRM deals;
- `spec`: the stored model as JSON, applied in pure Python (no scikit-learn, no pickle);
- `train`: fitting and the backtest (scikit-learn), `metrics`: AUC, lift, calibration;
- `store`: the models and the leads' scores in the database; `card`: the model card;
- `synthetic`: a history with a known truth, for tests and the demo.
"""
