#!/usr/bin/env python
"""Generate the demo lead file config/sample_leads.csv.

Deterministic (fixed seed): running it twice produces byte-identical output.
Uses only the standard library and `phonenumbers`.

The file holds ~220 plausible, entirely fictional B2B leads (all email domains are
under the reserved `.example` names, US/CA phones are in the fictional 555-01xx
range) plus eight deliberately bad rows that the importer must quarantine:

  1. invalid email (double @), no phone
  2. invalid email (no @ at all), no phone
  3. invalid phone, no email
  4. neither email nor phone
  5. duplicate of an earlier email (different case, surrounding spaces)
  6. unknown lifecycle_stage "hot-prospect"
  7. unknown timezone "Mars/Olympus_Mons"
  8. unparseable created_at "yesterday"

Usage:  python scripts/make_sample_leads.py [output.csv]
"""

from __future__ import annotations

import csv
import random
import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from leadops.intake.config import CANONICAL_COLUMNS

SEED = 20261005
N_GOOD = 220
OUT = Path(__file__).resolve().parent.parent / "config" / "sample_leads.csv"

HEADER = list(CANONICAL_COLUMNS)

# --------------------------------------------------------------------------- countries
# weight, IANA zones (weighted), first names, last names, company legal suffixes
COUNTRIES: dict[str, dict] = {
    "US": dict(
        weight=40,
        zones=[
            ("America/New_York", 45),
            ("America/Chicago", 25),
            ("America/Denver", 8),
            ("America/Los_Angeles", 22),
        ],
        first=[
            "James",
            "Emily",
            "Michael",
            "Aisha",
            "Carlos",
            "Priya",
            "Tyler",
            "Jasmine",
            "Kevin",
            "Mei",
            "Brandon",
            "Olivia",
            "DeShawn",
            "Rachel",
            "Daniel",
            "Hannah",
            "Marcus",
            "Sofia",
            "Ethan",
            "Grace",
        ],
        last=[
            "Johnson",
            "Williams",
            "Nguyen",
            "Patel",
            "Rodriguez",
            "Kim",
            "Thompson",
            "Washington",
            "Garcia",
            "O'Brien",
            "Cohen",
            "Brooks",
            "Rivera",
            "Chen",
            "Miller",
            "Jackson",
            "Sullivan",
            "Ramirez",
        ],
        legal=["Inc.", ", Inc.", "LLC", "Corp."],
    ),
    "GB": dict(
        weight=25,
        zones=[("Europe/London", 1)],
        first=[
            "Oliver",
            "Amelia",
            "Harry",
            "Zoë",
            "George",
            "Aditi",
            "Charlotte",
            "Jack",
            "Isla",
            "Mohammed",
            "Freya",
            "Callum",
            "Imogen",
            "Rhys",
            "Eleanor",
            "Tom",
        ],
        last=[
            "Smith",
            "Taylor",
            "Brown",
            "Wilson",
            "Evans",
            "Hughes",
            "Khan",
            "Patel",
            "Clarke",
            "Wright",
            "Walker",
            "Robinson",
            "Okafor",
            "Davies",
            "Fletcher",
        ],
        legal=["Ltd", "Ltd", "plc"],
    ),
    "DE": dict(
        weight=18,
        zones=[("Europe/Berlin", 1)],
        first=[
            "Lukas",
            "Anna",
            "Jonas",
            "Lea",
            "Felix",
            "Sophie",
            "Maximilian",
            "Katharina",
            "Jürgen",
            "Lena",
            "Tobias",
            "Jana",
            "Elif",
            "Matthias",
            "Charlotte",
        ],
        last=[
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Meyer",
            "Wagner",
            "Becker",
            "Hoffmann",
            "Schäfer",
            "Koch",
            "Richter",
            "Özdemir",
            "Krüger",
        ],
        legal=["GmbH", "GmbH", "AG", "GmbH & Co. KG"],
    ),
    "FR": dict(
        weight=12,
        zones=[("Europe/Paris", 1)],
        first=[
            "Camille",
            "Louis",
            "Chloé",
            "Hugo",
            "Léa",
            "Mathieu",
            "Inès",
            "Théo",
            "Manon",
            "Antoine",
            "Élodie",
            "François",
        ],
        last=[
            "Martin",
            "Bernard",
            "Dubois",
            "Thomas",
            "Robert",
            "Petit",
            "Durand",
            "Lefèvre",
            "Moreau",
            "Girard",
            "Lambert",
            "Benali",
        ],
        legal=["SAS", "SA", "SARL"],
    ),
    "ES": dict(
        weight=10,
        zones=[("Europe/Madrid", 9), ("Atlantic/Canary", 1)],
        first=[
            "José",
            "Lucía",
            "Javier",
            "María",
            "Alejandro",
            "Carmen",
            "Pablo",
            "Marta",
            "Sergio",
            "Nuria",
            "Álvaro",
            "Iñaki",
        ],
        last=[
            "García",
            "Fernández",
            "González",
            "Rodríguez",
            "López",
            "Martínez",
            "Sánchez",
            "Pérez",
            "Gómez",
            "Ruiz",
            "Núñez",
            "Ibáñez",
        ],
        legal=["S.L.", "S.A."],
    ),
    "NL": dict(
        weight=10,
        zones=[("Europe/Amsterdam", 1)],
        first=[
            "Daan",
            "Sanne",
            "Lars",
            "Zoë",
            "Bram",
            "Fleur",
            "Sem",
            "Eva",
            "Thijs",
            "Noor",
            "Ruben",
            "Lotte",
        ],
        last=[
            "de Jong",
            "Jansen",
            "de Vries",
            "van den Berg",
            "Bakker",
            "Visser",
            "Smit",
            "Meijer",
            "Mulder",
            "de Boer",
            "Bos",
            "van Dijk",
        ],
        legal=["B.V.", "B.V.", "N.V."],
    ),
    "IN": dict(
        weight=18,
        zones=[("Asia/Kolkata", 1)],
        first=[
            "Aarav",
            "Priya",
            "Rohan",
            "Ananya",
            "Vikram",
            "Kavya",
            "Arjun",
            "Sneha",
            "Rahul",
            "Deepika",
            "Siddharth",
            "Meera",
            "Karthik",
            "Lakshmi",
        ],
        last=[
            "Sharma",
            "Patel",
            "Iyer",
            "Reddy",
            "Gupta",
            "Nair",
            "Singh",
            "Mehta",
            "Kulkarni",
            "Banerjee",
            "Rao",
            "Chatterjee",
            "Menon",
        ],
        legal=["Pvt Ltd", "Private Limited", "Ltd"],
    ),
    "BR": dict(
        weight=12,
        zones=[("America/Sao_Paulo", 1)],
        first=[
            "João",
            "Ana Luísa",
            "Lucas",
            "Beatriz",
            "Gabriel",
            "Mariana",
            "Rafael",
            "Larissa",
            "Thiago",
            "Camila",
            "Gustavo",
            "Fernanda",
        ],
        last=[
            "Silva",
            "Santos",
            "Oliveira",
            "Souza",
            "Pereira",
            "Costa",
            "Rodrigues",
            "Almeida",
            "Carvalho",
            "Gonçalves",
            "Araújo",
            "Ribeiro",
        ],
        legal=["Ltda.", "S.A."],
    ),
    "MX": dict(
        weight=8,
        zones=[("America/Mexico_City", 4), ("America/Monterrey", 1)],
        first=[
            "José",
            "Sofía",
            "Diego",
            "Valentina",
            "Luis",
            "Ximena",
            "Andrés",
            "Daniela",
            "Emilio",
            "Guadalupe",
            "Rodrigo",
            "Renata",
        ],
        last=[
            "Hernández",
            "García",
            "Martínez",
            "López",
            "González",
            "Ramírez",
            "Flores",
            "Torres",
            "Morales",
            "Castillo",
            "Vázquez",
            "Domínguez",
        ],
        legal=["S.A. de C.V.", "S. de R.L."],
    ),
    "CA": dict(
        weight=12,
        zones=[
            ("America/Toronto", 55),
            ("America/Vancouver", 25),
            ("America/Edmonton", 10),
            ("America/Halifax", 10),
        ],
        first=[
            "Liam",
            "Emma",
            "Noah",
            "Étienne",
            "Olivia",
            "Ethan",
            "Maya",
            "Gabrielle",
            "Jacob",
            "Harpreet",
            "Wei",
            "Avery",
        ],
        last=[
            "Tremblay",
            "Gagnon",
            "Roy",
            "Smith",
            "Brown",
            "MacDonald",
            "Wong",
            "Singh",
            "Côté",
            "Bouchard",
            "Campbell",
            "Leblanc",
        ],
        legal=["Inc.", "Ltd.", "Corp."],
    ),
    "AU": dict(
        weight=12,
        zones=[
            ("Australia/Sydney", 45),
            ("Australia/Melbourne", 30),
            ("Australia/Brisbane", 15),
            ("Australia/Perth", 10),
        ],
        first=[
            "Jack",
            "Charlotte",
            "William",
            "Mia",
            "Lachlan",
            "Ruby",
            "Cooper",
            "Matilda",
            "Thomas",
            "Chloe",
            "Mai",
            "Isaac",
        ],
        last=[
            "Smith",
            "Jones",
            "Williams",
            "Brown",
            "Wilson",
            "Taylor",
            "Nguyen",
            "Anderson",
            "Kelly",
            "Murphy",
            "Mitchell",
            "Papadopoulos",
        ],
        legal=["Pty Ltd"],
    ),
    "JP": dict(
        weight=8,
        zones=[("Asia/Tokyo", 1)],
        first=[
            "Haruto",
            "Yui",
            "Sota",
            "Aoi",
            "Ren",
            "Hina",
            "Takumi",
            "Sakura",
            "Kenji",
            "Yuki",
            "Daiki",
            "Mei",
        ],
        last=[
            "Sato",
            "Suzuki",
            "Takahashi",
            "Tanaka",
            "Watanabe",
            "Ito",
            "Yamamoto",
            "Nakamura",
            "Kobayashi",
            "Kato",
            "Yoshida",
            "Yamada",
        ],
        legal=["K.K.", "Co., Ltd."],
    ),
    "SG": dict(
        weight=8,
        zones=[("Asia/Singapore", 1)],
        first=[
            "Wei Ling",
            "Jun Jie",
            "Hui Min",
            "Marcus",
            "Nurul",
            "Arjun",
            "Siti",
            "Darren",
            "Priyanka",
            "Jia Hui",
        ],
        last=["Tan", "Lim", "Lee", "Ng", "Wong", "Goh", "Chua", "Rahman", "Krishnan", "Teo", "Koh"],
        legal=["Pte. Ltd."],
    ),
    "ZA": dict(
        weight=6,
        zones=[("Africa/Johannesburg", 1)],
        first=[
            "Thabo",
            "Lerato",
            "Pieter",
            "Naledi",
            "Sipho",
            "Anika",
            "Johan",
            "Zanele",
            "Themba",
            "Chantelle",
            "Kagiso",
            "Riaan",
        ],
        last=[
            "Nkosi",
            "Dlamini",
            "van der Merwe",
            "Botha",
            "Naidoo",
            "Mokoena",
            "Pillay",
            "Ndlovu",
            "Khumalo",
            "Pretorius",
            "Mahlangu",
            "Jacobs",
        ],
        legal=["(Pty) Ltd"],
    ),
    "AE": dict(
        weight=6,
        zones=[("Asia/Dubai", 1)],
        first=[
            "Omar",
            "Fatima",
            "Ahmed",
            "Layla",
            "Khalid",
            "Mariam",
            "Yousef",
            "Noura",
            "Rashid",
            "Aisha",
            "Hamdan",
            "Sara",
        ],
        last=[
            "Al Mansoori",
            "Al Hashimi",
            "Al Falasi",
            "Haddad",
            "Khoury",
            "Rahman",
            "Al Nuaimi",
            "Qureshi",
            "Saleh",
            "Farouk",
            "Nasser",
        ],
        legal=["LLC", "FZ-LLC", "DMCC"],
    ),
    "SE": dict(
        weight=6,
        zones=[("Europe/Stockholm", 1)],
        first=[
            "Erik",
            "Elsa",
            "Björn",
            "Maja",
            "Oskar",
            "Astrid",
            "Linnea",
            "Johan",
            "Ingrid",
            "Axel",
            "Saga",
            "Måns",
        ],
        last=[
            "Andersson",
            "Johansson",
            "Karlsson",
            "Nilsson",
            "Eriksson",
            "Larsson",
            "Olsson",
            "Persson",
            "Lindqvist",
            "Bergström",
            "Åberg",
            "Sjöberg",
        ],
        legal=["AB"],
    ),
    "IE": dict(
        weight=7,
        zones=[("Europe/Dublin", 1)],
        first=[
            "Seán",
            "Aoife",
            "Ciarán",
            "Siobhán",
            "Niamh",
            "Oisín",
            "Cillian",
            "Róisín",
            "Conor",
            "Saoirse",
            "Darragh",
            "Orla",
        ],
        last=[
            "Murphy",
            "Kelly",
            "O'Sullivan",
            "Walsh",
            "Byrne",
            "Ryan",
            "O'Connor",
            "McCarthy",
            "Doyle",
            "Gallagher",
            "Ó Briain",
            "Kennedy",
        ],
        legal=["Ltd", "DAC", "Teoranta"],
    ),
    "NG": dict(
        weight=6,
        zones=[("Africa/Lagos", 1)],
        first=[
            "Chinedu",
            "Ngozi",
            "Oluwaseun",
            "Aisha",
            "Emeka",
            "Funmilayo",
            "Tunde",
            "Adaeze",
            "Ibrahim",
            "Yetunde",
            "Obinna",
            "Zainab",
        ],
        last=[
            "Okafor",
            "Adeyemi",
            "Okonkwo",
            "Bello",
            "Eze",
            "Balogun",
            "Nwosu",
            "Abubakar",
            "Ogunleye",
            "Chukwu",
            "Adebayo",
            "Umar",
        ],
        legal=["Limited", "Ltd"],
    ),
    "KE": dict(
        weight=5,
        zones=[("Africa/Nairobi", 1)],
        first=[
            "Wanjiru",
            "Brian",
            "Achieng",
            "Kevin",
            "Njeri",
            "Faith",
            "Collins",
            "Mercy",
            "Grace",
            "Dennis",
            "Wairimu",
            "Samuel",
        ],
        last=[
            "Kamau",
            "Otieno",
            "Mwangi",
            "Wanjiku",
            "Ochieng",
            "Kiprop",
            "Njoroge",
            "Mutua",
            "Odhiambo",
            "Kibet",
            "Wambui",
            "Chebet",
        ],
        legal=["Ltd", "Limited"],
    ),
    "NZ": dict(
        weight=5,
        zones=[("Pacific/Auckland", 1)],
        first=[
            "Aroha",
            "James",
            "Mere",
            "Oliver",
            "Ngaio",
            "Isabella",
            "Tama",
            "Hannah",
            "Nikau",
            "Sophie",
            "Mason",
            "Ruby",
        ],
        last=[
            "Smith",
            "Williams",
            "Ngata",
            "Wilson",
            "Te Rangi",
            "Parata",
            "Brown",
            "Thompson",
            "Walker",
            "Cooper",
            "Tipene",
        ],
        legal=["Limited", "Ltd"],
    ),
    "DK": dict(
        weight=5,
        zones=[("Europe/Copenhagen", 1)],
        first=[
            "Søren",
            "Mette",
            "Mads",
            "Freja",
            "Jens",
            "Ida",
            "Rasmus",
            "Sofie",
            "Mikkel",
            "Line",
            "Anders",
            "Signe",
        ],
        last=[
            "Jensen",
            "Nielsen",
            "Hansen",
            "Pedersen",
            "Andersen",
            "Christensen",
            "Larsen",
            "Sørensen",
            "Rasmussen",
            "Kjærgaard",
        ],
        legal=["ApS", "A/S"],
    ),
}

# US / CA numbers: geographic area code per zone, fictional 555-01xx line numbers.
NANP_AREA_CODES = {
    "America/New_York": ["212", "646", "617", "404", "305"],
    "America/Chicago": ["312", "512", "214", "612"],
    "America/Denver": ["303", "801"],
    "America/Los_Angeles": ["415", "206", "213", "503"],
    "America/Toronto": ["416", "647", "613", "514"],
    "America/Vancouver": ["604", "778"],
    "America/Edmonton": ["403", "780"],
    "America/Halifax": ["902", "506"],
}

# --------------------------------------------------------------------------- companies
INDUSTRIES = {
    "software": (18, ["Software", "Labs", "Analytics", "Cloud", "Systems", "Data"]),
    "financial services": (12, ["Capital", "Financial", "Payments", "Insurance", "Wealth"]),
    "logistics": (10, ["Logistics", "Freight", "Shipping", "Supply"]),
    "retail": (10, ["Retail", "Outfitters", "Market", "Stores", "Goods"]),
    "healthcare": (10, ["Health", "Clinics", "Medical", "Care", "Diagnostics"]),
    "manufacturing": (10, ["Manufacturing", "Industries", "Components", "Fabrication"]),
    "education": (6, ["Academy", "Learning", "Institute", "Education"]),
    "media": (6, ["Media", "Studios", "Publishing"]),
    "professional services": (7, ["Consulting", "Advisory", "Partners"]),
    "energy": (4, ["Energy", "Renewables", "Power"]),
    "hospitality": (3, ["Hotels", "Hospitality", "Travel"]),
    "telecommunications": (4, ["Telecom", "Networks", "Connect"]),
}

ROOTS = [
    "Northwind",
    "Bluecrest",
    "Kestrel",
    "Brightpath",
    "Ironbark",
    "Meridian",
    "Harborline",
    "Lumen",
    "Copperleaf",
    "Tidewater",
    "Quillon",
    "Verdant",
    "Helix",
    "Fjordline",
    "Granite",
    "Pinecone",
    "Silverline",
    "Orbital",
    "Cobalt",
    "Saffron",
    "Baobab",
    "Kōwhai",
    "Aurora",
    "Riverbend",
    "Stonegate",
    "Larkspur",
    "Nimbus",
    "Polaris",
    "Redwood",
    "Sable",
    "Tamarind",
    "Umber",
    "Vantage",
    "Wildflower",
    "Yarrow",
    "Zephyr",
    "Alder",
    "Beacon",
    "Cedarwood",
    "Driftwood",
    "Ember",
    "Falcon",
    "Glacier",
    "Halcyon",
    "Indigo",
    "Juniper",
    "Kinetic",
    "Lodestar",
    "Mosaic",
    "Nordlys",
    "Opal",
    "Parallax",
    "Quarry",
    "Rookery",
    "Solstice",
    "Terracotta",
    "Upland",
    "Vireo",
    "Willowmere",
    "Xylo",
    "Yellowtail",
    "Zenith",
    "Atlas",
    "Brambling",
    "Corvid",
    "Dunmore",
    "Estuary",
    "Foxglove",
    "Greystone",
    "Hollyhock",
    "Isola",
    "Jacaranda",
    "Karoo",
    "Lantana",
    "Monsoon",
    "Nectar",
    "Oakhurst",
    "Pelican",
    "Quokka",
    "Rosella",
    "Sakura",
    "Tundra",
    "Ubuntu",
    "Velvet",
    "Waratah",
    "Yuzu",
]

# Hand-written companies whose names need CSV quoting.
SPECIAL_COMPANIES = [
    dict(
        name="Smith, Jones & Partners",
        slug="smithjones",
        industry="professional services",
        country="GB",
        size=140,
    ),
    dict(name='The "Data" Co', slug="thedataco", industry="software", country="US", size=38),
    dict(
        name="Weber, Krüger & Söhne GmbH",
        slug="weberkrueger",
        industry="manufacturing",
        country="DE",
        size=620,
    ),
    dict(
        name='Café "Lumière" Group',
        slug="cafelumiere",
        industry="hospitality",
        country="FR",
        size=310,
    ),
]

SIZE_RANGES = [
    (1, 10, "1-10"),
    (11, 50, "11-50"),
    (51, 200, "51-200"),
    (201, 500, "201-500"),
    (501, 1000, "501-1000"),
    (1001, 5000, "1001-5000"),
    (5001, 10000, "5001-10000"),
]

# --------------------------------------------------------------------------- job titles
TITLES = [  # (weight, [titles])
    (
        7,
        [
            "CEO",
            "CTO",
            "CFO",
            "COO",
            "CMO",
            "Chief Revenue Officer",
            "Founder & CEO",
            "Co-founder",
            "Chief Data Officer",
            "Chief People Officer",
        ],
    ),
    (
        10,
        [
            "VP of Sales",
            "VP Marketing",
            "VP Engineering",
            "VP of Operations",
            "Vice President, Customer Success",
            "SVP, Finance",
            "VP Product",
        ],
    ),
    (
        15,
        [
            "Director of Marketing",
            "Sales Director",
            "Director of Engineering",
            "IT Director",
            "Director, Revenue Operations",
            "Finance Director",
            "Director of Procurement",
            "Operations Director",
        ],
    ),
    (
        12,
        [
            "Head of Growth",
            "Head of Demand Generation",
            "Head of Data",
            "Head of IT",
            "Head of Partnerships",
            "Head of Customer Experience",
            "Head of Digital",
        ],
    ),
    (
        24,
        [
            "Marketing Manager",
            "Sales Manager",
            "Product Manager",
            "Operations Manager",
            "Account Manager",
            "Marketing Operations Manager",
            "IT Manager",
            "Procurement Manager",
            "Engineering Manager",
            "Customer Success Manager",
        ],
    ),
    (
        10,
        [
            "Business Analyst",
            "Data Analyst",
            "Marketing Analyst",
            "Financial Analyst",
            "Senior Analyst",
        ],
    ),
    (
        10,
        [
            "Software Engineer",
            "Senior Software Engineer",
            "Solutions Engineer",
            "DevOps Engineer",
            "Data Engineer",
            "Sales Engineer",
        ],
    ),
    (
        9,
        [
            "Marketing Specialist",
            "Sales Development Representative",
            "Consultant",
            "Project Coordinator",
            "Account Executive",
            "Office Administrator",
        ],
    ),
    (3, ["Marketing Intern", "Sales Intern", "Engineering Intern"]),
]
INDUSTRY_TITLES = {
    "logistics": ["Supply Chain Director", "Fleet Manager", "Head of Warehouse Operations"],
    "healthcare": ["Clinical Operations Manager", "Director of Nursing", "Practice Manager"],
    "manufacturing": ["Plant Manager", "Quality Engineer", "Head of Production"],
    "education": ["Head of Digital Learning", "Dean of Admissions", "Curriculum Coordinator"],
    "retail": ["Store Operations Manager", "E-commerce Director", "Category Manager"],
    "media": ["Editor-in-Chief", "Audience Development Manager", "Head of Content"],
    "financial services": ["Risk Manager", "Head of Compliance", "Portfolio Analyst"],
}
LOCAL_TITLES = {  # a few non-English titles, as they would arrive from a real CRM export
    "DE": ["Geschäftsführer", "Leiter Vertrieb", "Marketingleiterin"],
    "FR": ["Directeur commercial", "Responsable marketing", "Chargée de projet"],
    "ES": ["Director de Marketing", "Jefa de Ventas"],
    "MX": ["Gerente de Ventas", "Directora General"],
    "BR": ["Gerente de Marketing", "Diretor de Operações"],
}

STAGE_QUOTA = {
    "subscriber": 33,
    "lead": 88,
    "mql": 44,
    "sql": 22,
    "opportunity": 15,
    "customer": 18,
}
SOURCES = [
    "web-form",
    "webinar",
    "csv-upload",
    "linkedin-ads",
    "google-ads",
    "referral",
    "trade-show",
    "content-download",
]
SOURCE_WEIGHTS = {  # per stage, same order as SOURCES
    "subscriber": [25, 10, 5, 5, 10, 2, 3, 40],
    "lead": [20, 12, 12, 15, 15, 5, 8, 13],
    "mql": [18, 18, 8, 15, 12, 8, 10, 11],
    "sql": [15, 12, 6, 12, 10, 20, 20, 5],
    "opportunity": [12, 10, 5, 10, 8, 25, 25, 5],
    "customer": [10, 8, 10, 8, 6, 30, 25, 3],
}

RECENT = (datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
OLD = (datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 9, 25, 23, 59, tzinfo=UTC))


# --------------------------------------------------------------------------- helpers
def weighted(rng: random.Random, pairs):
    items, weights = zip(*pairs, strict=True)
    return rng.choices(items, weights=weights, k=1)[0]


def quota(rng: random.Random, n: int, counts: dict) -> list:
    out = [k for k, c in counts.items() for _ in range(c)]
    assert len(out) == n, (len(out), n)
    rng.shuffle(out)
    return out


def flags(rng: random.Random, n: int, n_true: int) -> list[bool]:
    out = [True] * n_true + [False] * (n - n_true)
    rng.shuffle(out)
    return out


_TRANSLIT = str.maketrans(
    {
        "ø": "o",
        "Ø": "o",
        "æ": "ae",
        "Æ": "ae",
        "ß": "ss",
        "ł": "l",
        "Ł": "l",
        "ı": "i",
        "đ": "d",
        "'": "",
        "’": "",
        " ": "",
        "&": "",
    }
)


def ascii_slug(text: str, country: str = "") -> str:
    text = text.lower()
    if country == "DE":
        text = text.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue")
    text = text.translate(_TRANSLIT)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return "".join(c for c in text if c.isalnum() or c in ".-")


class PhonePool:
    """Valid, unique mobile numbers per region, varied from phonenumbers' example number."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def _candidate(self, region: str, zone: str | None) -> phonenumbers.PhoneNumber:
        if region in ("US", "CA"):
            area = self.rng.choice(NANP_AREA_CODES[zone])
            return phonenumbers.parse(f"+1{area}5550{self.rng.randint(100, 199)}", region)
        example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
        digits = str(example.national_number)
        k = self.rng.choice((3, 4))
        tail = str(self.rng.randrange(10**k)).zfill(k)
        return phonenumbers.parse(f"+{example.country_code}{digits[:-k]}{tail}", region)

    def mobile(self, region: str, zone: str | None) -> phonenumbers.PhoneNumber:
        for _ in range(1000):
            num = self._candidate(region, zone)
            e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
            if (
                e164 not in self.used
                and phonenumbers.is_valid_number(num)
                and phonenumbers.region_code_for_number(num) == region
            ):
                self.used.add(e164)
                return num
        raise RuntimeError(f"no valid number found for {region}")

    def gb_landline(self) -> phonenumbers.PhoneNumber:
        # 020 7946 0xxx is Ofcom's range reserved for fiction.
        for _ in range(1000):
            num = phonenumbers.parse(f"020 7946 0{self.rng.randint(0, 999):03d}", "GB")
            e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
            if e164 not in self.used and phonenumbers.is_valid_number(num):
                self.used.add(e164)
                return num
        raise RuntimeError("no GB landline")

    def render(self, num: phonenumbers.PhoneNumber) -> str:
        style = self.rng.choices(("e164", "national", "intl"), weights=(60, 30, 10))[0]
        fmt = {
            "e164": PhoneNumberFormat.E164,
            "national": PhoneNumberFormat.NATIONAL,
            "intl": PhoneNumberFormat.INTERNATIONAL,
        }[style]
        return phonenumbers.format_number(num, fmt)


def make_timestamp(rng: random.Random, span, zone: str) -> str:
    start, end = span
    tz = ZoneInfo(zone)
    while True:
        day = start + timedelta(days=rng.randrange((end - start).days + 1))
        local_day = day.astimezone(tz).date()
        if local_day.weekday() >= 5 and rng.random() < 0.8:
            continue  # fewer sign-ups at weekends
        local = datetime(
            local_day.year,
            local_day.month,
            local_day.day,
            rng.choices(range(7, 22), weights=[2, 5, 8, 9, 9, 7, 7, 9, 9, 8, 6, 4, 3, 2, 1])[0],
            rng.randrange(60),
            tzinfo=tz,
        )
        ts = local.astimezone(UTC)
        if start <= ts <= end:
            return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def company_size_cell(rng: random.Random, size: int) -> str:
    r = rng.random()
    if r < 0.04:
        return ""
    if r < 0.10:
        for lo, hi, label in SIZE_RANGES:
            if lo <= size <= hi:
                return label
        return ""
    return str(size)


def random_size(rng: random.Random) -> int:
    band = rng.choices(
        [(3, 20), (20, 200), (200, 1000), (1000, 10000), (10000, 80000)],
        weights=[15, 35, 25, 18, 7],
    )[0]
    n = rng.randint(*band)
    if n >= 5000:
        return round(n, -3)
    if n >= 1000:
        return round(n, -2)
    if n >= 200:
        return round(n, -1)
    return n


# --------------------------------------------------------------------------- generation
def build(rng: random.Random) -> tuple[list[dict], list[tuple[int, dict]]]:
    phones = PhonePool(rng)
    country_pairs = [(c, d["weight"]) for c, d in COUNTRIES.items()]
    industry_pairs = [(i, w) for i, (w, _) in INDUSTRIES.items()]
    title_pairs = [(titles, w) for w, titles in TITLES]

    companies: list[dict] = []
    used_slugs: set[str] = set()
    root_pool = ROOTS[:]
    rng.shuffle(root_pool)

    def new_company(country: str) -> dict:
        industry = weighted(rng, industry_pairs)
        while True:
            root = (
                root_pool.pop()
                if root_pool
                else rng.choice(ROOTS) + rng.choice(["", " North", " Bay", " Group"])
            )
            word = rng.choice(INDUSTRIES[industry][1])
            slug = ascii_slug(f"{root}{word}").replace(".", "")
            if slug not in used_slugs:
                break
        used_slugs.add(slug)
        name = f"{root} {word}"
        if rng.random() < 0.55:
            legal = rng.choice(COUNTRIES[country]["legal"])
            name = f"{name}{legal}" if legal.startswith(",") else f"{name} {legal}"
        tld = rng.choices(
            [".example", ".example.com", ".example.net", ".example.org"],
            weights=[60, 20, 10, 10 if industry != "education" else 60],
        )[0]
        if rng.random() < 0.3 and len(slug) > 12:
            slug = ascii_slug(f"{root}-{word}")
        comp = dict(
            name=name,
            domain=f"{slug}{tld}",
            industry=industry,
            country=country,
            size=random_size(rng),
        )
        companies.append(comp)
        return comp

    for sc in SPECIAL_COMPANIES:
        companies.append(
            dict(
                name=sc["name"],
                domain=f"{sc['slug']}.example",
                industry=sc["industry"],
                country=sc["country"],
                size=sc["size"],
            )
        )
    used_slugs.update(sc["slug"] for sc in SPECIAL_COMPANIES)

    # every country gets at least 4 leads; the rest follow the weights
    country_list = [c for c in COUNTRIES for _ in range(4)]
    country_list += rng.choices(
        [c for c, _ in country_pairs],
        weights=[w for _, w in country_pairs],
        k=N_GOOD - len(country_list),
    )
    rng.shuffle(country_list)
    # a few pinned rows so the accented names below are certain to appear among good rows
    featured = {
        3: ("GB", "Zoë", "Hughes"),
        57: ("ES", "José", "Núñez"),
        101: ("DK", "Søren", "Kjærgaard"),
        149: ("DE", "Jürgen", "Müller"),
        188: ("NL", "Zoë", "de Vries"),
    }
    for idx, (c, _, _) in featured.items():
        country_list[idx] = c

    stages = quota(rng, N_GOOD, STAGE_QUOTA)
    n_phone = round(N_GOOD * 0.60)  # 132
    has_phone = flags(rng, N_GOOD, n_phone)
    email_consent = flags(rng, N_GOOD, round(N_GOOD * 0.90))
    blank_tz = flags(rng, N_GOOD, round(N_GOOD * 0.15))
    is_recent = flags(rng, N_GOOD, round(N_GOOD * 0.75))
    phone_idx = [i for i, p in enumerate(has_phone) if p]
    wa_true = set(rng.sample(phone_idx, round(n_phone * 0.35)))
    # three phone-only leads (WhatsApp-consented, no email) -- still good rows
    phone_only = set(rng.sample(sorted(wa_true), 3))
    # GB fixed lines (national "020 7946 0xxx" format); never WhatsApp-consented
    gb_landline_budget = 4

    used_emails: set[str] = set()
    rows: list[dict] = []
    special_left = [c for c in companies]  # the 4 special ones, each used at least once
    for i in range(N_GOOD):
        # ----- company & country
        if special_left and i % 37 == 5:
            comp = special_left.pop(0)
            country = comp["country"]
        else:
            country = country_list[i]
            local = [c for c in companies if c["country"] == country]
            if local and rng.random() < 0.28:
                comp = rng.choice(local)
            else:
                comp = new_company(country)
        cdata = COUNTRIES[country]
        zone = weighted(rng, cdata["zones"])

        # ----- person
        first = rng.choice(cdata["first"])
        last = rng.choice(cdata["last"])
        if i in featured:
            _, first, last = featured[i]
        f, ln = ascii_slug(first, country), ascii_slug(last, country)
        domain = comp["domain"]
        patterns = [f"{f}.{ln}", f"{f[0]}.{ln}", f"{f}", f"{f}{ln[0]}", f"{f[0]}{ln}", f"{f}_{ln}"]
        pweights = [50, 12, 8, 8, 17, 5]
        email = ""
        for attempt in range(20):
            local_part = rng.choices(patterns, weights=pweights)[0]
            if attempt >= 6:
                local_part = f"{f}.{ln}{attempt - 4}"
            cand = f"{local_part}@{domain}"
            if cand.lower() not in used_emails:
                email = cand
                break
        assert email
        used_emails.add(email.lower())

        # ----- phone
        phone, wa = "", False
        if has_phone[i]:
            if country == "GB" and i not in wa_true and gb_landline_budget and rng.random() < 0.5:
                gb_landline_budget -= 1
                phone = phonenumbers.format_number(phones.gb_landline(), PhoneNumberFormat.NATIONAL)
            else:
                phone = phones.render(phones.mobile(country, zone))
                wa = i in wa_true
        if i in phone_only:
            used_emails.discard(email.lower())
            email = ""

        # ----- job
        title_pool = weighted(rng, title_pairs)
        title = rng.choice(title_pool)
        if comp["industry"] in INDUSTRY_TITLES and rng.random() < 0.15:
            title = rng.choice(INDUSTRY_TITLES[comp["industry"]])
        if country in LOCAL_TITLES and rng.random() < 0.2:
            title = rng.choice(LOCAL_TITLES[country])
        if rng.random() < 0.03:
            title = ""
        industry = comp["industry"] if rng.random() > 0.02 else ""

        stage = stages[i]
        created = make_timestamp(rng, RECENT if is_recent[i] else OLD, zone)
        rows.append(
            {
                "email": email,
                "first_name": first,
                "last_name": last,
                "phone": phone,
                "company": comp["name"],
                "job_title": title,
                "company_size": company_size_cell(rng, comp["size"]),
                "industry": industry,
                "country": country,
                "timezone": "" if blank_tz[i] else zone,
                "lifecycle_stage": stage,
                "source": rng.choices(SOURCES, weights=SOURCE_WEIGHTS[stage])[0],
                "email_consent": "true" if (email_consent[i] and email) else "false",
                "whatsapp_consent": "true" if wa else "false",
                "created_at": created,
            }
        )

    # ----- the deliberately bad rows: (insert before good-row index, row)
    dup_src = next(r for r in rows[20:] if r["email"] and r["country"] in ("US", "GB"))
    dup_local, dup_domain = dup_src["email"].split("@")
    dup = dict(dup_src)
    dup.update(
        email=f"  {dup_local.title()}@{dup_domain.upper()} ",
        phone="",
        job_title="Senior " + dup_src["job_title"] if dup_src["job_title"] else "Manager",
        lifecycle_stage="mql" if dup_src["lifecycle_stage"] != "mql" else "sql",
        source="webinar" if dup_src["source"] != "webinar" else "trade-show",
        whatsapp_consent="false",
        created_at="2026-11-24T16:05:00Z",
    )
    dup_pos = rows.index(dup_src) + 1 + 100  # well after the original

    def bad(**kw) -> dict:
        base = {k: "" for k in HEADER}
        base.update(email_consent="true", whatsapp_consent="false")
        base.update(kw)
        return base

    bad_rows = [
        (
            12,
            bad(
                email="maria.lopez@@lopezlogistica.example",
                first_name="María",
                last_name="López",
                company="López Logística S.L.",
                job_title="Jefa de Compras",
                company_size="85",
                industry="logistics",
                country="ES",
                timezone="Europe/Madrid",
                lifecycle_stage="lead",
                source="web-form",
                created_at="2026-10-14T09:12:00Z",
            ),
        ),
        (
            38,
            bad(
                email="no-at-sign.example.com",
                first_name="Noah",
                last_name="Fischer",
                company="Kestrel Freight Inc.",
                job_title="Operations Manager",
                company_size="240",
                industry="logistics",
                country="US",
                timezone="America/Chicago",
                lifecycle_stage="subscriber",
                source="content-download",
                created_at="2026-10-21T15:40:00Z",
            ),
        ),
        (
            67,
            bad(
                phone="+1 555 0000 1",
                first_name="Tyler",
                last_name="Brooks",
                company="Granite Retail LLC",
                job_title="Store Operations Manager",
                company_size="1200",
                industry="retail",
                country="US",
                timezone="America/New_York",
                lifecycle_stage="lead",
                source="trade-show",
                email_consent="false",
                created_at="2026-10-30T13:05:00Z",
            ),
        ),
        (
            93,
            bad(
                first_name="Ingrid",
                last_name="Sjöberg",
                company="Nordlys Energy AB",
                country="SE",
                lifecycle_stage="lead",
                source="trade-show",
                email_consent="false",
                created_at="2026-11-03T10:20:00Z",
            ),
        ),
        (dup_pos, dup),
        (
            141,
            bad(
                email="kwame.mensah@baobabpayments.example",
                first_name="Kwame",
                last_name="Mensah",
                phone="+27 71 123 4589",
                company="Baobab Payments (Pty) Ltd",
                job_title="Head of Partnerships",
                company_size="51-200",
                industry="financial services",
                country="ZA",
                timezone="Africa/Johannesburg",
                lifecycle_stage="hot-prospect",
                source="linkedin-ads",
                created_at="2026-11-10T08:45:00Z",
            ),
        ),
        (
            168,
            bad(
                email="zoe.vandermeer@orbitalmedia.example",
                first_name="Zoë",
                last_name="van der Meer",
                company="Orbital Media B.V.",
                job_title="Audience Development Manager",
                company_size="60",
                industry="media",
                country="NL",
                timezone="Mars/Olympus_Mons",
                lifecycle_stage="mql",
                source="webinar",
                created_at="2026-11-12T14:31:00Z",
            ),
        ),
        (
            197,
            bad(
                email="s.ramasamy@helixdiagnostics.example.com",
                first_name="Shalini",
                last_name="Ramasamy",
                company="Helix Diagnostics Pvt Ltd",
                job_title="Director of Procurement",
                company_size="900",
                industry="healthcare",
                country="IN",
                timezone="Asia/Kolkata",
                lifecycle_stage="lead",
                source="google-ads",
                created_at="yesterday",
            ),
        ),
    ]
    for _, b in bad_rows:
        if b["email"] and b is not dup:
            assert b["email"].strip().lower() not in used_emails, b["email"]
    return rows, bad_rows


def sms_consent(row: dict) -> bool:
    """North American leads who opted in to WhatsApp on a form also ticked the SMS box
    (derived, so the rest of the file stays as the seed made it)."""
    return bool(
        row.get("phone")
        and row.get("whatsapp_consent") == "true"
        and row.get("country") in ("US", "CA")
    )


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else OUT
    rng = random.Random(SEED)
    rows, bad_rows = build(rng)
    merged: list[dict] = []
    inserts = sorted(bad_rows, key=lambda x: x[0])
    j = 0
    for i, row in enumerate(rows):
        while j < len(inserts) and inserts[j][0] == i:
            merged.append(inserts[j][1])
            j += 1
        merged.append(row)
    merged.extend(b for _, b in inserts[j:])
    for row in merged:
        row["sms_consent"] = "true" if sms_consent(row) else "false"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(merged)
    print(f"wrote {len(merged)} rows ({len(rows)} good, {len(bad_rows)} bad) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
