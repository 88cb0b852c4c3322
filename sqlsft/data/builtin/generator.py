"""The offline builtin data set: text-to-SQL rows shaped like gretelai/synthetic_text_to_sql.

Each row picks a query kind (by complexity bucket), a domain that has tables fit for it, fills those
tables with 3-8 random rows, and words the question with one of several phrasings. Filter values
and thresholds are drawn from the generated rows, so every analytic query returns at least one row
by construction; `verify=True` also runs each schema and query in SQLite and redraws on failure.

Every row has its own random generator seeded by (seed, id): the rows are deterministic, and a
larger `num_rows` with the same seed extends a smaller one (prefix-stable).
"""

import math
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from sqlsft.common.errors import SqlsftError

BUILTIN_COLUMNS: tuple[str, ...] = (
    "id",
    "domain",
    "domain_description",
    "sql_complexity",
    "sql_complexity_description",
    "sql_task_type",
    "sql_task_type_description",
    "sql_prompt",
    "sql_context",
    "sql",
    "sql_explanation",
)
DEFAULT_NUM_ROWS = 12000

# gretel's own labels and descriptions
BASIC, AGGREGATION, SINGLE_JOIN, SUBQUERIES = "basic SQL", "aggregation", "single join", "subqueries"
COMPLEXITY_DESCRIPTIONS = {
    BASIC: "basic SQL with a simple select statement",
    AGGREGATION: "aggregation functions (COUNT, SUM, AVG, MIN, MAX, etc.), and HAVING clause",
    SINGLE_JOIN: "only one join (specify inner, outer, cross)",
    SUBQUERIES: "subqueries, including correlated and nested subqueries",
}
ANALYTICS, MANIPULATION = "analytics and reporting", "data manipulation"
TASK_DESCRIPTIONS = {
    ANALYTICS: "generating reports, dashboards, and analytical insights",
    MANIPULATION: "inserting, updating, or deleting records",
}
# Share of rows per bucket; "dml" rows are the data-manipulation ones.
BUCKET_WEIGHTS = {"basic": 0.30, "aggregation": 0.30, "join": 0.16, "subquery": 0.14, "dml": 0.10}
ROWS_PER_TABLE = (3, 8)
DISTRACTOR_TABLE_CHANCE = 0.25  # how often the context also holds an unused table of the domain

# --------------------------------------------------------------------------------------------------
# Schema description


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    role: str  # id | ref | label | category | number | date
    words: str = ""  # how a question names the column
    plural: str = ""
    pool: tuple[str, ...] = ()
    low: float = 0
    high: float = 0
    decimals: int = 0
    step: int = 1
    additive: bool = True  # a SUM of it means something
    phrase: str = ""  # a noun modifier for a category value, "{v}" marks the value
    parent: str = ""  # the referenced table, for role "ref"


def _plural(words: str) -> str:
    if words.endswith("y") and words[-2:-1] not in "aeiou":
        return words[:-1] + "ies"
    if words.endswith(("s", "x", "sh", "ch")):
        return words + "es"
    return words + "s"


def _label(name: str, pool, words: str = "name", plural: str = "") -> Column:
    return Column(name, "VARCHAR(50)", "label", words, plural or _plural(words), tuple(pool))


def _category(name: str, pool, words: str = "", phrase: str = "", plural: str = "") -> Column:
    words = words or name.replace("_", " ")
    return Column(
        name, "VARCHAR(30)", "category", words, plural or _plural(words), tuple(pool), phrase=phrase
    )


def _number(
    name: str,
    low: float,
    high: float,
    words: str = "",
    decimals: int = 0,
    step: int = 1,
    additive: bool = True,
) -> Column:
    sql_type = "INT" if decimals == 0 else f"DECIMAL(10,{decimals})"
    words = words or name.replace("_", " ")
    return Column(name, sql_type, "number", words, _plural(words), (), low, high, decimals, step, additive)


def _date(name: str, words: str = "", first: int = 2018, last: int = 2023) -> Column:
    return Column(name, "DATE", "date", words or name.replace("_", " "), low=first, high=last)


def _ref(name: str, parent: str) -> Column:
    return Column(name, "INT", "ref", name.replace("_", " "), parent=parent)


def _literal_function(col: Column) -> Callable[[object], str]:
    if col.role in ("label", "category", "date"):
        return _quote
    return f"{{:.{col.decimals}f}}".format if col.decimals else str


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Table:
    def __init__(self, name: str, singular: str, plural: str, *columns: Column) -> None:
        self.name, self.singular, self.plural = name, singular, plural
        self.columns = (Column("id", "INT", "id", "id"), *columns)
        self.label = next((c for c in columns if c.role == "label"), None)
        self.categories = tuple(c for c in columns if c.role == "category")
        self.numbers = tuple(c for c in columns if c.role == "number")
        self.additive = tuple(c for c in self.numbers if c.additive)
        self.dates = tuple(c for c in columns if c.role == "date")
        self.ref = next((c for c in columns if c.role == "ref"), None)
        self.create = f"CREATE TABLE {name} ({', '.join(f'{c.name} {c.sql_type}' for c in self.columns)});"
        self.insert_head = f"INSERT INTO {name} ({', '.join(c.name for c in self.columns)}) VALUES "
        self.literals = tuple((c.name, _literal_function(c)) for c in self.columns)

    def has(self, needs: tuple[str, ...]) -> bool:
        present = {
            "label": self.label,
            "category": self.categories,
            "number": self.numbers,
            "additive": self.additive,
            "date": self.dates,
            "ref": self.ref,
        }
        return all(present[need] for need in needs)

    def vars(self, prefix: str = "") -> dict[str, str]:
        label = self.label
        return {
            f"{prefix}table": self.name,
            f"{prefix}singular": self.singular,
            f"{prefix}plural": self.plural,
            f"{prefix}label": label.name if label else "",
            f"{prefix}label_word": label.words if label else "",
            f"{prefix}label_words": label.plural if label else "",
        }


@dataclass(frozen=True)
class Domain:
    name: str
    description: str
    tables: tuple[Table, ...]

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)


PEOPLE = (
    "Alice Johnson", "Bob Smith", "Carlos Garcia", "Diana Lee", "Ethan Brown", "Fatima Khan", "George Miller",
    "Hana Suzuki", "Ivan Petrov", "Julia Rossi", "Kwame Mensah", "Laura Chen", "Mohammed Ali", "Nina Patel",
    "Oscar Silva", "Priya Sharma",
)  # fmt: skip
CITIES = ("Boston", "Chicago", "Seattle", "Denver", "Austin")
COUNTRIES = ("USA", "Canada", "Germany", "Brazil", "India", "Japan")

DOMAINS: tuple[Domain, ...] = (
    Domain(
        "public transportation",
        "Route planning, fares, ridership and vehicle fleets in public transportation.",
        (
            Table(
                "routes", "transit route", "transit routes",
                _label("route_name", ("Green Line", "Red Line", "Blue Line", "Orange Line", "Silver Line",
                                      "Harbor Express", "Airport Shuttle", "Crosstown 12", "Riverside Loop",
                                      "Night Owl", "Lakeshore Local", "Downtown Circulator")),
                _category("city", CITIES, phrase="in {v}"),
                _category("mode", ("Bus", "Tram", "Subway", "Ferry"), "transit mode", "served by {v}"),
                _number("fare", 1, 4.5, decimals=2, additive=False),
                _number("daily_riders", 800, 25000, "daily ridership", step=10),
            ),
            Table(
                "vehicles", "vehicle", "vehicles",
                _ref("route_id", "routes"),
                _category("fuel_type", ("Electric", "Diesel", "Hybrid", "CNG"), phrase="running on {v}"),
                _number("capacity", 30, 120, "passenger capacity"),
                _number("mileage", 10000, 400000, step=100),
                _date("service_date", "service start date", 2010, 2023),
            ),
        ),
    ),
    Domain(
        "healthcare",
        "Hospitals, patient admissions, diagnoses and lengths of stay in healthcare.",
        (
            Table(
                "hospitals", "hospital", "hospitals",
                _label("hospital_name", ("Mercy General", "Riverside Medical Center", "Lakeside Hospital",
                                         "Northview Clinic", "Summit Health", "Valley Regional", "Harbor Medical",
                                         "Pinecrest Hospital", "Oakwood Memorial", "Cedar Ridge Hospital",
                                         "Bayview Medical Center", "Westfield General")),
                _category("state", ("California", "Texas", "New York", "Florida", "Ohio"), phrase="in {v}"),
                _category("ownership", ("Public", "Private", "Nonprofit"), "ownership type"),
                _number("beds", 50, 900, "number of beds"),
            ),
            Table(
                "patients", "patient", "patients",
                _ref("hospital_id", "hospitals"),
                _category("diagnosis", ("Diabetes", "Asthma", "Hypertension", "Influenza", "Fracture"),
                          phrase="diagnosed with {v}", plural="diagnoses"),
                _number("age", 1, 95, additive=False),
                _number("length_of_stay", 1, 21, "length of stay in days"),
                _date("admission_date"),
            ),
        ),
    ),
    Domain(
        "retail",
        "Product catalog, stock levels, suppliers and sales transactions of a retail chain.",
        (
            Table(
                "products", "product", "products",
                _label("product_name", ("Wireless Mouse", "Desk Lamp", "Yoga Mat", "Coffee Maker", "Running Shoes",
                                        "Backpack", "Water Bottle", "Bluetooth Speaker", "Notebook Set",
                                        "Office Chair", "Blender", "Rain Jacket")),
                _category("category", ("Electronics", "Home", "Sports", "Office", "Apparel"),
                          phrase="in the {v} category", plural="categories"),
                _number("price", 5, 250, decimals=2, additive=False),
                _number("stock", 0, 500, "stock level"),
            ),
            Table(
                "sales", "sale", "sales",
                _ref("product_id", "products"),
                _category("region", ("North", "South", "East", "West"), phrase="in the {v} region"),
                _number("quantity", 1, 50),
                _date("sale_date"),
            ),
            Table(
                "suppliers", "supplier", "suppliers",
                _label("supplier_name", ("Acme Supply", "Global Goods", "Prime Wholesale", "Northwind Traders",
                                         "BlueSky Imports", "Evergreen Distribution", "Summit Sourcing",
                                         "Pacific Partners", "Metro Merchandise", "Keystone Supply")),
                _category("country", ("USA", "China", "Germany", "Mexico", "Vietnam"), phrase="based in {v}"),
                _number("rating", 1, 5, decimals=1, additive=False),
                _number("lead_time_days", 2, 45, "lead time in days", additive=False),
            ),
        ),
    ),
    Domain(
        "education",
        "School enrollment, budgets and teacher staffing in K-12 education.",
        (
            Table(
                "schools", "school", "schools",
                _label("school_name", ("Lincoln High", "Roosevelt Middle", "Washington Elementary",
                                       "Jefferson Academy", "Hillside High", "Maple Grove Elementary",
                                       "Riverside Middle", "Oak Park High", "Franklin Elementary", "Kennedy Middle",
                                       "Sunset High", "Brookside Academy")),
                _category("district", ("North District", "South District", "East District", "West District"),
                          phrase="in the {v}"),
                _number("students", 150, 2500, "enrollment"),
                _number("budget", 400000, 9000000, step=1000),
            ),
            Table(
                "teachers", "teacher", "teachers",
                _ref("school_id", "schools"),
                _label("teacher_name", PEOPLE),
                _category("subject", ("Math", "Science", "English", "History", "Art"), phrase="teaching {v}"),
                _number("years_experience", 1, 35, "years of experience", additive=False),
                _number("salary", 38000, 98000, step=100),
            ),
        ),
    ),
    Domain(
        "agriculture",
        "Farm sizes, crop harvests and yields in agriculture.",
        (
            Table(
                "farms", "farm", "farms",
                _label("farm_name", ("Green Acres", "Sunny Fields", "Willow Creek Farm", "Golden Harvest",
                                     "Red Barn Farm", "Hilltop Ranch", "Meadowbrook", "Prairie Wind Farm",
                                     "Cedar Valley Farm", "Blue River Farm", "Maple Leaf Farm", "Stony Brook Farm")),
                _category("country", ("USA", "Brazil", "India", "Kenya", "France"), phrase="in {v}"),
                _category("farming_method", ("Organic", "Conventional", "Hydroponic"), "farming method"),
                _number("area_hectares", 10, 1500, "area in hectares", decimals=1),
            ),
            Table(
                "harvests", "harvest", "harvests",
                _ref("farm_id", "farms"),
                _category("crop", ("Wheat", "Corn", "Rice", "Soybeans", "Potatoes"), phrase="of {v}"),
                _number("yield_tons", 5, 800, "yield in tons", decimals=1),
                _date("harvest_date"),
            ),
        ),
    ),
    Domain(
        "energy",
        "Power plant capacity and electricity generation from renewable and conventional sources.",
        (
            Table(
                "power_plants", "power plant", "power plants",
                _label("plant_name", ("Sunridge Solar", "Windy Point", "Blue Falls Hydro", "Coal Creek Station",
                                      "Prairie Wind", "Desert Sun Array", "Northern Lights Hydro", "Riverbend Gas",
                                      "Coastal Breeze", "Mountain View Solar", "Lakeside Gas Plant", "Canyon Wind")),
                _category("energy_source", ("Solar", "Wind", "Hydro", "Natural Gas", "Coal"), "energy source",
                          "powered by {v}"),
                _category("country", ("Germany", "Spain", "USA", "Canada", "Australia"), phrase="in {v}"),
                _number("capacity_mw", 5, 1200, "capacity in MW", decimals=1),
            ),
            Table(
                "generation", "generation record", "generation records",
                _ref("plant_id", "power_plants"),
                _category("quarter", ("Q1", "Q2", "Q3", "Q4"), phrase="for {v}"),
                _number("energy_mwh", 100, 50000, "energy generated in MWh", decimals=1),
                _date("report_date", "report date"),
            ),
        ),
    ),
    Domain(
        "finance",
        "Bank customers, credit scores and account transactions in retail banking.",
        (
            Table(
                "customers", "customer", "customers",
                _label("customer_name", PEOPLE),
                _category("country", ("USA", "Canada", "UK", "Germany", "Japan"), phrase="from {v}"),
                _category("segment", ("Retail", "Premium", "Business"), "customer segment", "in the {v} segment"),
                _number("credit_score", 450, 850, "credit score", additive=False),
            ),
            Table(
                "transactions", "transaction", "transactions",
                _ref("customer_id", "customers"),
                _category("transaction_type", ("Deposit", "Withdrawal", "Transfer", "Payment"), "transaction type"),
                _number("amount", 10, 5000, decimals=2),
                _date("transaction_date"),
            ),
        ),
    ),
    Domain(
        "sports",
        "Teams, player rosters, goals and salaries in professional football.",
        (
            Table(
                "teams", "team", "teams",
                _label("team_name", ("Lions", "Eagles", "Sharks", "Wolves", "Falcons", "Bears", "Tigers", "Hawks",
                                     "Panthers", "Dragons", "Comets", "Rangers")),
                _category("city", CITIES, phrase="from {v}"),
                _category("league", ("Premier", "Championship", "Division One"), phrase="in the {v} league"),
                _number("wins", 0, 30),
            ),
            Table(
                "players", "player", "players",
                _ref("team_id", "teams"),
                _label("player_name", PEOPLE),
                _category("position", ("Forward", "Midfielder", "Defender", "Goalkeeper"), phrase="playing as {v}"),
                _number("goals", 0, 35),
                _number("salary", 50000, 5000000, step=1000),
            ),
        ),
    ),
    Domain(
        "real estate",
        "Property listings, prices and the agents who sell them in residential real estate.",
        (
            Table(
                "agents", "agent", "agents",
                _label("agent_name", PEOPLE),
                _category("agency", ("Keller Realty", "Coastal Homes", "Urban Nest"), phrase="working for {v}"),
                _number("years_active", 1, 30, "years active", additive=False),
            ),
            Table(
                "properties", "property", "properties",
                _ref("agent_id", "agents"),
                _label("address", ("12 Oak St", "45 Pine Ave", "7 Maple Dr", "230 Elm St", "18 Cedar Ln",
                                   "99 Birch Rd", "3 Willow Ct", "61 Spruce Way", "150 Lake Blvd", "8 Hill St",
                                   "27 River Rd", "44 Park Ave"), "address", "addresses"),
                _category("city", CITIES, phrase="in {v}"),
                _category("property_type", ("House", "Condo", "Townhouse", "Apartment"), "property type"),
                _number("price", 150000, 1500000, step=1000),
                _number("bedrooms", 1, 6, "number of bedrooms", additive=False),
            ),
        ),
    ),
    Domain(
        "nonprofit",
        "Donors, donations by cause and volunteer hours of nonprofit organizations.",
        (
            Table(
                "donors", "donor", "donors",
                _label("donor_name", PEOPLE),
                _category("country", COUNTRIES, phrase="from {v}"),
                _category("donor_type", ("Individual", "Corporate", "Foundation"), "donor type"),
            ),
            Table(
                "donations", "donation", "donations",
                _ref("donor_id", "donors"),
                _category("cause", ("Education", "Health", "Environment", "Animal Welfare", "Disaster Relief"),
                          phrase="to {v}"),
                _number("amount", 10, 10000, decimals=2),
                _date("donation_date"),
            ),
            Table(
                "volunteers", "volunteer", "volunteers",
                _label("volunteer_name", PEOPLE),
                _category("program", ("Tutoring", "Food Bank", "Cleanup", "Mentoring"), phrase="in the {v} program"),
                _number("hours", 1, 200, "volunteer hours"),
            ),
        ),
    ),
    Domain(
        "music",
        "Artists, songs and streaming numbers in the music industry.",
        (
            Table(
                "artists", "artist", "artists",
                _label("artist_name", ("Aurora Sky", "The Midnight Owls", "Luna Park", "DJ Nova", "Echo Valley",
                                       "Silver Rain", "The Wanderers", "Mila Stone", "Jazz Collective", "Neon Tide",
                                       "Ruby Fields", "Kai Rivers")),
                _category("genre", ("Pop", "Rock", "Jazz", "Hip Hop", "Electronic"), phrase="in the {v} genre"),
                _category("country", COUNTRIES, phrase="from {v}"),
            ),
            Table(
                "songs", "song", "songs",
                _ref("artist_id", "artists"),
                _label("title", ("Starlight", "Ocean Drive", "Broken Clocks", "Golden Hour", "Paper Planes",
                                 "Night Drive", "Wildfire", "Echoes", "Slow Motion", "Summer Rain", "Neon Lights",
                                 "Homecoming"), "title"),
                _category("language", ("English", "Spanish", "Korean", "French"), phrase="in {v}"),
                _number("streams", 1000, 5000000, "number of streams"),
                _number("duration_seconds", 120, 360, "duration in seconds", additive=False),
                _date("release_date", "release date", 2012, 2023),
            ),
        ),
    ),
    Domain(
        "space exploration",
        "Space missions, agencies, launch costs and crew records.",
        (
            Table(
                "missions", "space mission", "space missions",
                _label("mission_name", ("Apollo Next", "Orion Test", "Mars Scout", "Lunar Gateway", "Europa Probe",
                                        "Titan Explorer", "Solar Watch", "Deep Sky", "Comet Chaser", "Star Mapper",
                                        "Ion Voyager", "Polar Lander")),
                _category("agency", ("NASA", "ESA", "ISRO", "JAXA", "CNSA"), phrase="run by {v}"),
                _number("cost_million", 50, 3000, "cost in millions of dollars", decimals=1),
                _date("launch_date", "launch date", 2000, 2023),
            ),
            Table(
                "crew_members", "crew member", "crew members",
                _ref("mission_id", "missions"),
                _label("astronaut_name", PEOPLE),
                _category("nationality", ("American", "French", "Indian", "Japanese", "Chinese")),
                _number("days_in_space", 1, 400, "days in space"),
                _number("age", 28, 60, additive=False),
            ),
        ),
    ),
    Domain(
        "hospitality",
        "Hotels, room rates and guest bookings in tourism and hospitality.",
        (
            Table(
                "hotels", "hotel", "hotels",
                _label("hotel_name", ("Grand Plaza", "Seaside Inn", "Mountain Lodge", "City Suites", "Palm Resort",
                                      "Harbor View Hotel", "Royal Garden", "Sunset Motel", "Alpine Retreat",
                                      "Central Station Hotel", "Lakeside Lodge", "Desert Oasis")),
                _category("country", ("France", "Italy", "Spain", "Thailand", "Mexico"), phrase="in {v}"),
                _number("stars", 1, 5, "star rating", additive=False),
                _number("rooms", 20, 600, "number of rooms"),
                _number("nightly_rate", 40, 650, "nightly rate", decimals=2, additive=False),
            ),
            Table(
                "bookings", "booking", "bookings",
                _ref("hotel_id", "hotels"),
                _category("channel", ("Direct", "Online Agency", "Travel Agent", "Corporate"), "booking channel",
                          "made through the {v} channel"),
                _number("nights", 1, 14, "number of nights"),
                _number("guests", 1, 6, "number of guests"),
                _date("booking_date", "booking date"),
            ),
        ),
    ),
    Domain(
        "logistics",
        "Warehouses, freight shipments, weights and delivery status in logistics.",
        (
            Table(
                "warehouses", "warehouse", "warehouses",
                _label("warehouse_name", ("Central Hub", "North Depot", "South Depot", "East Gateway", "West Yard",
                                          "Harbor Terminal", "Airport Cargo", "Riverside Storage", "Metro DC",
                                          "Valley Center", "Summit Storage", "Port Logistics")),
                _category("city", CITIES, phrase="in {v}"),
                _number("capacity", 1000, 50000, "storage capacity", step=100),
            ),
            Table(
                "shipments", "shipment", "shipments",
                _ref("warehouse_id", "warehouses"),
                _category("destination", ("Miami", "Dallas", "Atlanta", "Phoenix", "Detroit"), phrase="bound for {v}"),
                _category("status", ("Delivered", "In Transit", "Delayed"), plural="statuses"),
                _number("weight_kg", 10, 5000, "weight in kg", decimals=1),
                _date("ship_date", "ship date"),
            ),
        ),
    ),
    Domain(
        "human resources",
        "Departments, employees, salaries and hiring in workforce management.",
        (
            Table(
                "departments", "department", "departments",
                _label("department_name", ("Engineering", "Marketing", "Sales", "Finance", "Human Resources",
                                           "Legal", "Operations", "Support", "Research", "Design", "Procurement",
                                           "IT")),
                _category("location", ("New York", "London", "Berlin", "Toronto"), phrase="located in {v}"),
                _number("budget", 100000, 5000000, step=1000),
            ),
            Table(
                "employees", "employee", "employees",
                _ref("department_id", "departments"),
                _label("employee_name", PEOPLE),
                _category("level", ("Junior", "Mid", "Senior", "Lead"), "seniority level"),
                _number("salary", 40000, 180000, step=500),
                _date("hire_date", "hire date", 2010, 2023),
            ),
        ),
    ),
    Domain(
        "wildlife conservation",
        "Protected habitats, species population surveys and conservation areas.",
        (
            Table(
                "habitats", "habitat", "habitats",
                _label("habitat_name", ("Emerald Forest", "Blue Lagoon", "Savanna Reserve", "Misty Wetlands",
                                        "Red Rock Canyon", "Coral Bay", "Snowy Peaks", "Bamboo Valley",
                                        "Mangrove Coast", "Golden Plains", "Cloud Forest", "Delta Marsh")),
                _category("region", ("Africa", "Asia", "South America", "Europe", "Oceania"), phrase="in {v}"),
                _category("protection_level", ("Strict", "Moderate", "Limited"), "protection level"),
                _number("area_km2", 5, 9000, "area in square kilometers", decimals=1),
            ),
            Table(
                "animal_populations", "population survey", "population surveys",
                _ref("habitat_id", "habitats"),
                _category("species", ("Elephant", "Tiger", "Jaguar", "Orangutan", "Koala", "Lynx"), phrase="of {v}",
                          plural="species"),
                _number("population", 5, 2000),
                _date("survey_date", "survey date"),
            ),
        ),
    ),
    Domain(
        "automotive",
        "Electric vehicle models, manufacturers, driving range, prices and unit sales.",
        (
            Table(
                "ev_models", "electric vehicle model", "electric vehicle models",
                _label("model_name", ("Volt Spark", "Aero One", "Nimbus X", "Terra EV", "Zephyr", "Bolt Runner",
                                      "Nova S", "Pulse 3", "Arc GT", "Vista E", "Comet Mini", "Helix Pro"),
                       "model name"),
                _category("manufacturer", ("Voltra", "Aerodyne", "Nimbus Motors", "Terra Auto"), phrase="made by {v}"),
                _category("body_style", ("Sedan", "SUV", "Hatchback", "Pickup"), "body style"),
                _number("range_km", 200, 650, "range in km", additive=False),
                _number("price", 25000, 120000, step=100, additive=False),
                _number("units_sold", 100, 90000, "units sold"),
            ),
        ),
    ),
    Domain(
        "cybersecurity",
        "Security incidents, affected systems and software vulnerabilities across sectors.",
        (
            Table(
                "security_incidents", "security incident", "security incidents",
                _category("incident_type", ("Phishing", "Malware", "Ransomware", "DDoS", "Data Breach"),
                          "incident type"),
                _category("sector", ("Finance", "Healthcare", "Retail", "Government", "Education"),
                          phrase="in the {v} sector"),
                _category("severity", ("Low", "Medium", "High", "Critical"), phrase="with {v} severity",
                          plural="severity levels"),
                _number("affected_systems", 1, 500, "number of affected systems"),
                _date("incident_date", "incident date"),
            ),
            Table(
                "vulnerabilities", "vulnerability", "vulnerabilities",
                _label("cve_id", tuple(f"CVE-2023-{n}" for n in range(1001, 1013)), "CVE id"),
                _category("product", ("WebServer", "MailGateway", "VPN Client", "Database"), phrase="affecting {v}"),
                _number("cvss_score", 1, 10, "CVSS score", decimals=1, additive=False),
                _number("days_to_patch", 1, 120, "days to patch", additive=False),
            ),
        ),
    ),
    Domain(
        "food services",
        "Restaurants, menu items, prices and nutrition in food services.",
        (
            Table(
                "restaurants", "restaurant", "restaurants",
                _label("restaurant_name", ("Bella Italia", "Taco Fiesta", "Sakura Sushi", "Curry House",
                                           "The Burger Joint", "Le Petit Bistro", "Golden Dragon", "Green Bowl",
                                           "Smokehouse BBQ", "Olive Garden Cafe", "Noodle Bar", "Ocean Grill")),
                _category("cuisine", ("Italian", "Mexican", "Japanese", "Indian", "American"), phrase="serving {v} food"),
                _category("city", CITIES, phrase="in {v}"),
                _number("rating", 1, 5, decimals=1, additive=False),
            ),
            Table(
                "menu_items", "menu item", "menu items",
                _ref("restaurant_id", "restaurants"),
                _label("item_name", ("Margherita Pizza", "Chicken Tacos", "Salmon Roll", "Lamb Curry",
                                     "Cheeseburger", "Caesar Salad", "Fried Rice", "Veggie Bowl", "Pulled Pork",
                                     "Tiramisu", "Ramen", "Fish and Chips"), "item name"),
                _category("course", ("Appetizer", "Main", "Dessert", "Drink"), phrase="served as a {v}"),
                _number("price", 3, 45, decimals=2, additive=False),
                _number("calories", 50, 1500),
            ),
        ),
    ),
    Domain(
        "gaming",
        "Video game titles, genres, platforms, prices and player counts.",
        (
            Table(
                "games", "game", "games",
                _label("title", ("Star Quest", "Pixel Racer", "Dungeon Depths", "Sky Fortress", "Block Builder",
                                 "Neon Strike", "Farm Life", "Galaxy Wars", "Puzzle Peak", "Soccer Stars",
                                 "Shadow Ninja", "Ocean Odyssey"), "title"),
                _category("genre", ("RPG", "Shooter", "Puzzle", "Strategy", "Sports"), phrase="in the {v} genre"),
                _category("platform", ("PC", "PlayStation", "Xbox", "Switch", "Mobile"), phrase="on {v}"),
                _number("price", 0, 70, decimals=2, additive=False),
                _number("active_players", 1000, 2000000, "active players", step=100),
                _date("release_date", "release date", 2015, 2023),
            ),
        ),
    ),
)  # fmt: skip

# --------------------------------------------------------------------------------------------------
# Values and literals

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
_AGGREGATES = (
    ("AVG", "average"),
    ("SUM", "total"),
    ("MAX", "maximum"),
    ("MIN", "minimum"),
    ("MAX", "highest"),
)
_GREATER = ("greater than", "above", "more than", "over", "higher than")
_LESS = ("less than", "below", "under", "lower than")

TableData = tuple[Table, list[dict]]


def _pick(rng: random.Random, options):
    """rng.choice, without its overhead (this module draws a few hundred thousand times per second)."""
    return options[int(rng.random() * len(options))]


def _int(rng: random.Random, low: int, high: int) -> int:
    """rng.randint(low, high), cheaper."""
    return low + int(rng.random() * (high - low + 1))


def _number_text(value: float, decimals: int) -> str:
    if decimals == 0 or value == int(value):
        return str(int(value))
    return f"{value:.{decimals}f}"


def _literal(col: Column, value) -> str:
    return _literal_function(col)(value)


def _draw_number(rng: random.Random, col: Column):
    if col.decimals:
        return round(rng.uniform(col.low, col.high), col.decimals)
    return _int(rng, int(col.low) // col.step, int(col.high) // col.step) * col.step


def _draw_date(rng: random.Random, col: Column) -> str:
    return f"{_int(rng, int(col.low), int(col.high))}-{_int(rng, 1, 12):02d}-{_int(rng, 1, 28):02d}"


def _fill(rng: random.Random, table: Table, parent_ids: list[int] | None = None, n: int = 0) -> list[dict]:
    n = n or _int(rng, *ROWS_PER_TABLE)
    labels = rng.sample(table.label.pool, n) if table.label else None
    if table.ref and parent_ids is None:
        parent_ids = list(range(1, _int(rng, *ROWS_PER_TABLE) + 1))
    if parent_ids and len(parent_ids) > 2 and rng.random() < 0.5:
        parent_ids = parent_ids[: len(parent_ids) - _int(rng, 1, 2)]  # some parents without children
    rows = []
    for i in range(n):
        row = {}
        for col in table.columns:
            role = col.role
            if role == "id":
                row[col.name] = i + 1
            elif role == "label":
                row[col.name] = labels[i]
            elif role == "category":
                row[col.name] = _pick(rng, col.pool)
            elif role == "number":
                row[col.name] = _draw_number(rng, col)
            elif role == "date":
                row[col.name] = _draw_date(rng, col)
            else:
                row[col.name] = _pick(rng, parent_ids)
        rows.append(row)
    return rows


def _inserts(data: list[TableData]) -> list[str]:
    """One INSERT statement per table, with all its rows."""
    return [
        table.insert_head
        + ", ".join(["(" + ", ".join([f(r[name]) for name, f in table.literals]) + ")" for r in rows])
        + ";"
        for table, rows in data
    ]


def _nice_in(lo: float, hi: float, decimals: int) -> float | None:
    """The roundest number x with lo <= x < hi and at most `decimals` decimals, if there is one."""
    for k in range(7, -decimals - 1, -1):
        step = 10.0**k
        x = round(math.ceil(round(lo / step, 9)) * step, decimals)
        if lo <= x < hi:
            return x
    return None


def _threshold(rng: random.Random, col: Column, rows: list[dict], greater: bool) -> str | None:
    """A round threshold that some but not all rows pass (`> x` when greater, else `< x`)."""
    values = sorted({r[col.name] for r in rows})
    if len(values) < 2:
        return None
    i = _int(rng, 1, len(values) - 1)
    if greater:
        x = _nice_in(values[i - 1], values[i], col.decimals)
    else:
        x = _nice_in(-values[i], -values[i - 1], col.decimals)
        x = None if x is None else -x
    return None if x is None else _number_text(x, col.decimals)


def _bounds(col: Column, value: float) -> tuple[str, str]:
    """Round bounds a <= value <= b."""
    step = 10.0 ** max(math.floor(math.log10(value)) - 1, -col.decimals) if value > 0 else 1.0
    low = math.floor(round(value / step, 9)) * step
    high = math.ceil(round(value / step, 9)) * step
    if high == low:
        high = low + step
    return _number_text(round(low, col.decimals), col.decimals), _number_text(
        round(high, col.decimals), col.decimals
    )


def _phrase(rng: random.Random, col: Column, value: str) -> str:
    if col.phrase and rng.random() < 0.75:
        return col.phrase.format(v=value)
    return f"whose {col.words} is {value}"


def _mention(rng: random.Random, value: str) -> str:
    return value if rng.random() < 0.5 else f"'{value}'"


def _count_words(rng: random.Random, n: int) -> str:
    return NUMBER_WORDS[n] if n in NUMBER_WORDS and rng.random() < 0.5 else str(n)


def _aggregate(rng: random.Random, col: Column) -> tuple[str, str]:
    options = _AGGREGATES if col.additive else tuple(a for a in _AGGREGATES if a[0] != "SUM")
    return _pick(rng, options)


def _unique_extreme(values: list[float], n: int, highest: bool) -> bool:
    """Whether the top (or bottom) n values are separated from the rest (no tie at the cut)."""
    ordered = sorted(values, reverse=highest)
    return len(ordered) > n and ordered[n - 1] != ordered[n]


# --------------------------------------------------------------------------------------------------
# Query kinds


@dataclass(frozen=True)
class QueryKind:
    name: str
    bucket: str  # basic | aggregation | join | subquery | dml
    complexity: str
    needs: tuple[str, ...]  # what the (parent) table must have
    child_needs: tuple[str, ...] | None  # set for kinds over a parent and its child table
    questions: dict[str, tuple[str, ...]]  # variant -> phrasings
    explanations: dict[str, str]  # variant -> explanation
    build: Callable
    weight: float

    @property
    def task_type(self) -> str:
        return MANIPULATION if self.bucket == "dml" else ANALYTICS


QUERY_KINDS: list[QueryKind] = []


def _kind(name, bucket, complexity, questions, explanation, needs=(), child_needs=None, weight=1.0):
    def register(build):
        q = questions if isinstance(questions, dict) else {"": questions}
        e = explanation if isinstance(explanation, dict) else dict.fromkeys(q, explanation)
        QUERY_KINDS.append(QueryKind(name, bucket, complexity, needs, child_needs, q, e, build, weight))
        return build

    return register


# Basic selects ------------------------------------------------------------------------------------


@_kind(
    "filter_category", "basic", BASIC,
    (
        "List the {label_words} of all {plural} {phrase}.",
        "What are the {label_words} of the {plural} {phrase}?",
        "Show the {label_words} of {plural} {phrase}.",
        "Find all {plural} {phrase}.",
        "Which {plural} are there {phrase}?",
    ),
    "This query selects the {label} column from the {table} table, keeping only the rows where {cat} is '{v}'.",
    needs=("label", "category"), weight=1.5,
)  # fmt: skip
def _filter_category(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.categories)
    v = _pick(rng, rows)[col.name]
    sql = f"SELECT {t.label.name} FROM {t.name} WHERE {col.name} = {_quote(v)};"
    return sql, {"cat": col.name, "v": v, "phrase": _phrase(rng, col, v)}, ""


@_kind(
    "filter_number", "basic", BASIC,
    {
        "names": (
            "Which {plural} have {num_words} {cmp} {x}?",
            "List the {plural} with {num_words} {cmp} {x}.",
            "Find the {label_words} of {plural} whose {num_words} is {cmp} {x}.",
        ),
        "values": (
            "Show the {label_word} and {num_words} of each {singular} whose {num_words} is {cmp} {x}.",
            "List {plural} with {num_words} {cmp} {x}, along with their {num_words}.",
            "What are the {label_words} and {num_words} of {plural} with {num_words} {cmp} {x}?",
        ),
    },
    "This query returns {columns} from the {table} table for rows where {num} {op} {x}.",
    needs=("label", "number"), weight=1.5,
)  # fmt: skip
def _filter_number(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.numbers)
    greater = rng.random() < 0.6
    x = _threshold(rng, col, rows, greater)
    if x is None:
        return None
    op = ">" if greater else "<"
    variant = _pick(rng, ("names", "values"))
    columns = t.label.name if variant == "names" else f"{t.label.name}, {col.name}"
    sql = f"SELECT {columns} FROM {t.name} WHERE {col.name} {op} {x};"
    cmp = _pick(rng, _GREATER if greater else _LESS)
    return (
        sql,
        {"num": col.name, "num_words": col.words, "cmp": cmp, "x": x, "op": op, "columns": columns},
        variant,
    )


@_kind(
    "filter_category_and_number", "basic", BASIC,
    (
        "Which {plural} {phrase} have {num_words} {cmp} {x}?",
        "List the {plural} {phrase} with {num_words} {cmp} {x}.",
        "Find the {label_words} of {plural} {phrase} whose {num_words} is {cmp} {x}.",
    ),
    "This query selects the {label} of {plural} in the {table} table where {cat} is '{v}' and {num} {op} {x}.",
    needs=("label", "category", "number"),
)  # fmt: skip
def _filter_category_and_number(rng, data):
    ((t, rows),) = data
    cat, col = _pick(rng, t.categories), _pick(rng, t.numbers)
    v = _pick(rng, rows)[cat.name]
    group = [r for r in rows if r[cat.name] == v]
    greater = rng.random() < 0.6
    x = _threshold(rng, col, rows, greater)
    if x is None:
        return None
    op = ">" if greater else "<"
    if not any((r[col.name] > float(x)) if greater else (r[col.name] < float(x)) for r in group):
        return None
    sql = f"SELECT {t.label.name} FROM {t.name} WHERE {cat.name} = {_quote(v)} AND {col.name} {op} {x};"
    phrase = _phrase(rng, cat, v)
    cmp = _pick(rng, _GREATER if greater else _LESS)
    return sql, {"cat": cat.name, "v": v, "phrase": phrase, "num": col.name, "num_words": col.words,
                 "cmp": cmp, "x": x, "op": op}, ""  # fmt: skip


@_kind(
    "between", "basic", BASIC,
    (
        "List the {plural} with {num_words} between {a} and {b}.",
        "Which {plural} have {num_words} from {a} to {b}?",
        "Find the {label_words} of {plural} whose {num_words} is between {a} and {b}.",
    ),
    "This query selects the {label} of rows in the {table} table whose {num} lies between {a} and {b} (inclusive).",
    needs=("label", "number"),
)  # fmt: skip
def _between(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.numbers)
    a, b = _bounds(col, _pick(rng, rows)[col.name])
    sql = f"SELECT {t.label.name} FROM {t.name} WHERE {col.name} BETWEEN {a} AND {b};"
    return sql, {"num": col.name, "num_words": col.words, "a": a, "b": b}, ""


@_kind(
    "details", "basic", BASIC,
    (
        "Show all details of the {singular} {x}.",
        "What information does the {table} table hold about {x}?",
        "Get every column for the {singular} named {x}.",
        "Display the full record of {x}.",
    ),
    "This query returns every column of the {table} table for the row whose {label} is '{v}'.",
    needs=("label",), weight=0.8,
)  # fmt: skip
def _details(rng, data):
    ((t, rows),) = data
    v = _pick(rng, rows)[t.label.name]
    return f"SELECT * FROM {t.name} WHERE {t.label.name} = {_quote(v)};", {"v": v, "x": _mention(rng, v)}, ""


@_kind(
    "distinct", "basic", BASIC,
    (
        "What are the distinct {cat_words} of {plural}?",
        "List the unique {cat_words} in the {table} table.",
        "Which {cat_words} appear among the {plural}?",
    ),
    "This query lists each distinct value of {cat} in the {table} table once.",
    needs=("category",), weight=0.6,
)  # fmt: skip
def _distinct(rng, data):
    ((t, _rows),) = data
    col = _pick(rng, t.categories)
    return f"SELECT DISTINCT {col.name} FROM {t.name};", {"cat": col.name, "cat_words": col.plural}, ""


@_kind(
    "date_filter", "basic", BASIC,
    {
        "since": (
            "List the {plural} with a {date_words} in {y} or later.",
            "Which {plural} have a {date_words} on or after January 1, {y}?",
            "Show the {label_words} of {plural} whose {date_words} is {y}-01-01 or later.",
        ),
        "in": (
            "Which {plural} have a {date_words} in {y}?",
            "List the {plural} with a {date_words} during {y}.",
            "Show the {label_words} of {plural} whose {date_words} falls in {y}.",
        ),
    },
    {
        "since": "This query selects the {label} of rows in the {table} table with {date} on or after '{y}-01-01'.",
        "in": "This query selects the {label} of rows in the {table} table whose {date} lies within {y}.",
    },
    needs=("label", "date"),
)  # fmt: skip
def _date_filter(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.dates)
    y = _pick(rng, rows)[col.name][:4]
    if rng.random() < 0.5:
        condition, variant = f"{col.name} >= '{y}-01-01'", "since"
    else:
        condition, variant = f"{col.name} BETWEEN '{y}-01-01' AND '{y}-12-31'", "in"
    sql = f"SELECT {t.label.name} FROM {t.name} WHERE {condition};"
    return sql, {"date": col.name, "date_words": col.words, "y": y}, variant


@_kind(
    "top_one", "basic", BASIC,
    (
        "Which {singular} has the {extreme} {num_words}?",
        "What is the {label_word} of the {singular} with the {extreme} {num_words}?",
        "Find the {singular} with the {extreme} {num_words}.",
        "Name the {singular} that has the {extreme} {num_words}.",
    ),
    "This query orders the {table} table by {num} in {direction} order and returns the {label} of the first row.",
    needs=("label", "number"), weight=1.2,
)  # fmt: skip
def _top_one(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.numbers)
    highest = rng.random() < 0.6
    if not _unique_extreme([r[col.name] for r in rows], 1, highest):
        return None
    order = "DESC" if highest else "ASC"
    sql = f"SELECT {t.label.name} FROM {t.name} ORDER BY {col.name} {order} LIMIT 1;"
    extreme = _pick(rng, ("highest", "largest")) if highest else _pick(rng, ("lowest", "smallest"))
    direction = "descending" if highest else "ascending"
    return sql, {"num": col.name, "num_words": col.words, "extreme": extreme, "direction": direction}, ""


@_kind(
    "top_n", "basic", BASIC,
    {
        "high": (
            "What are the {n} {plural} with the highest {num_words}?",
            "List the {n} {plural} with the highest {num_words}, with their {num_words}.",
            "Show the top {n} {plural} by {num_words}.",
        ),
        "low": (
            "What are the {n} {plural} with the lowest {num_words}?",
            "List the {n} {plural} with the lowest {num_words}, with their {num_words}.",
            "Show the bottom {n} {plural} by {num_words}, lowest first.",
        ),
    },
    "This query sorts the {table} table by {num} in {direction} order and returns the first {count} rows.",
    needs=("label", "number"),
)  # fmt: skip
def _top_n(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.numbers)
    if len(rows) < 4:
        return None
    count = _int(rng, 2, min(5, len(rows) - 1))
    highest = rng.random() < 0.65
    if not _unique_extreme([r[col.name] for r in rows], count, highest):
        return None
    order = "DESC" if highest else "ASC"
    sql = f"SELECT {t.label.name}, {col.name} FROM {t.name} ORDER BY {col.name} {order} LIMIT {count};"
    return sql, {
        "num": col.name, "num_words": col.words, "n": _count_words(rng, count), "count": count,
        "direction": "descending" if highest else "ascending",
    }, "high" if highest else "low"  # fmt: skip


@_kind(
    "sorted_filter", "basic", BASIC,
    (
        "List the {label_words} and {num_words} of {plural} {phrase}, sorted by {num_words} in {direction} order.",
        "Show {plural} {phrase} with their {num_words}, from {range_words}.",
        "Sort the {plural} {phrase} by {num_words} ({direction}) and show their {label_words} and {num_words}.",
    ),
    "This query selects {label} and {num} from the {table} table where {cat} is '{v}', ordered by {num} {order}.",
    needs=("label", "category", "number"),
)  # fmt: skip
def _sorted_filter(rng, data):
    ((t, rows),) = data
    cat, col = _pick(rng, t.categories), _pick(rng, t.numbers)
    v = _pick(rng, rows)[cat.name]
    highest = rng.random() < 0.5
    order = "DESC" if highest else "ASC"
    sql = (
        f"SELECT {t.label.name}, {col.name} FROM {t.name} WHERE {cat.name} = {_quote(v)} "
        f"ORDER BY {col.name} {order};"
    )
    return sql, {
        "cat": cat.name, "v": v, "phrase": _phrase(rng, cat, v), "num": col.name, "num_words": col.words,
        "order": order, "direction": "descending" if highest else "ascending",
        "range_words": "highest to lowest" if highest else "lowest to highest",
    }, ""  # fmt: skip


@_kind(
    "not_equal", "basic", BASIC,
    (
        "Which {plural} have a {cat_word} other than {v}?",
        "List the {label_words} of {plural} whose {cat_word} is not {v}.",
        "Find all {plural} except those whose {cat_word} is {v}.",
    ),
    "This query selects the {label} of rows in the {table} table whose {cat} is anything but '{v}'.",
    needs=("label", "category"), weight=0.7,
)  # fmt: skip
def _not_equal(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.categories)
    v = _pick(rng, rows)[col.name]
    if all(r[col.name] == v for r in rows):
        return None
    sql = f"SELECT {t.label.name} FROM {t.name} WHERE {col.name} != {_quote(v)};"
    return sql, {"cat": col.name, "cat_word": col.words, "v": v}, ""


@_kind(
    "like_prefix", "basic", BASIC,
    (
        "Which {plural} have a {label_word} starting with '{p}'?",
        "List the {plural} whose {label_word} begins with {p}.",
        "Find all {plural} with a {label_word} that starts with the letter {p}.",
    ),
    "This query uses LIKE '{p}%' to select the {plural} in the {table} table whose {label} starts with '{p}'.",
    needs=("label",), weight=0.6,
)  # fmt: skip
def _like_prefix(rng, data):
    ((t, rows),) = data
    p = _pick(rng, rows)[t.label.name][0]
    return f"SELECT {t.label.name} FROM {t.name} WHERE {t.label.name} LIKE '{p}%';", {"p": p}, ""


# Aggregation --------------------------------------------------------------------------------------


@_kind(
    "count_filter", "aggregation", AGGREGATION,
    (
        "How many {plural} are there {phrase}?",
        "Count the {plural} {phrase}.",
        "What is the number of {plural} {phrase}?",
        "How many {plural} {phrase} does the {table} table list?",
    ),
    "This query counts the rows of the {table} table where {cat} is '{v}'.",
    needs=("category",), weight=1.5,
)  # fmt: skip
def _count_filter(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.categories)
    v = _pick(rng, rows)[col.name]
    sql = f"SELECT COUNT(*) FROM {t.name} WHERE {col.name} = {_quote(v)};"
    return sql, {"cat": col.name, "v": v, "phrase": _phrase(rng, col, v)}, ""


@_kind(
    "count_all", "aggregation", AGGREGATION,
    (
        "How many {plural} are there?",
        "What is the total number of {plural}?",
        "Count all records in the {table} table.",
        "How many rows does the {table} table have?",
    ),
    "This query counts all rows of the {table} table.",
    weight=0.5,
)  # fmt: skip
def _count_all(rng, data):
    ((t, _rows),) = data
    return f"SELECT COUNT(*) FROM {t.name};", {}, ""


@_kind(
    "aggregate_filter", "aggregation", AGGREGATION,
    (
        "What is the {agg_words} {num_words} of {plural} {phrase}?",
        "Find the {agg_words} {num_words} for {plural} {phrase}.",
        "Calculate the {agg_words} {num_words} among {plural} {phrase}.",
        "Show the {agg_words} {num_words} of all {plural} {phrase}.",
    ),
    "This query computes the {agg_words} {num} ({func}) over the rows of the {table} table where {cat} is '{v}'.",
    needs=("category", "number"), weight=1.5,
)  # fmt: skip
def _aggregate_filter(rng, data):
    ((t, rows),) = data
    cat, col = _pick(rng, t.categories), _pick(rng, t.numbers)
    v = _pick(rng, rows)[cat.name]
    func, words = _aggregate(rng, col)
    sql = f"SELECT {func}({col.name}) FROM {t.name} WHERE {cat.name} = {_quote(v)};"
    return sql, {"cat": cat.name, "v": v, "phrase": _phrase(rng, cat, v), "num": col.name,
                 "num_words": col.words, "agg_words": words, "func": func}, ""  # fmt: skip


@_kind(
    "aggregate_all", "aggregation", AGGREGATION,
    (
        "What is the {agg_words} {num_words} across all {plural}?",
        "Calculate the {agg_words} {num_words} in the {table} table.",
        "What is the {agg_words} {num_words} of {plural}?",
    ),
    "This query applies {func} to the {num} column of the whole {table} table.",
    needs=("number",),
)  # fmt: skip
def _aggregate_all(rng, data):
    ((t, _rows),) = data
    col = _pick(rng, t.numbers)
    func, words = _aggregate(rng, col)
    sql = f"SELECT {func}({col.name}) FROM {t.name};"
    return sql, {"num": col.name, "num_words": col.words, "agg_words": words, "func": func}, ""


@_kind(
    "count_number_filter", "aggregation", AGGREGATION,
    (
        "How many {plural} have {num_words} {cmp} {x}?",
        "Count the {plural} whose {num_words} is {cmp} {x}.",
        "What is the number of {plural} with {num_words} {cmp} {x}?",
    ),
    "This query counts the rows of the {table} table where {num} {op} {x}.",
    needs=("number",),
)  # fmt: skip
def _count_number_filter(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.numbers)
    greater = rng.random() < 0.6
    x = _threshold(rng, col, rows, greater)
    if x is None:
        return None
    op = ">" if greater else "<"
    cmp = _pick(rng, _GREATER if greater else _LESS)
    sql = f"SELECT COUNT(*) FROM {t.name} WHERE {col.name} {op} {x};"
    return sql, {"num": col.name, "num_words": col.words, "cmp": cmp, "x": x, "op": op}, ""


@_kind(
    "group_count", "aggregation", AGGREGATION,
    (
        "How many {plural} are there per {cat_word}?",
        "Count the number of {plural} in each {cat_word}.",
        "Show the number of {plural} for every {cat_word}.",
        "What is the count of {plural} by {cat_word}?",
    ),
    "This query groups the {table} table by {cat} and counts the rows in each group.",
    needs=("category",), weight=1.3,
)  # fmt: skip
def _group_count(rng, data):
    ((t, _rows),) = data
    col = _pick(rng, t.categories)
    sql = f"SELECT {col.name}, COUNT(*) FROM {t.name} GROUP BY {col.name};"
    return sql, {"cat": col.name, "cat_word": col.words}, ""


@_kind(
    "group_aggregate", "aggregation", AGGREGATION,
    (
        "What is the {agg_words} {num_words} of {plural} per {cat_word}?",
        "Show the {agg_words} {num_words} for each {cat_word}.",
        "Calculate the {agg_words} {num_words} of {plural} grouped by {cat_word}.",
        "For each {cat_word}, what is the {agg_words} {num_words} of {plural}?",
    ),
    "This query groups the {table} table by {cat} and computes {func}({num}) for each group.",
    needs=("category", "number"), weight=1.3,
)  # fmt: skip
def _group_aggregate(rng, data):
    ((t, _rows),) = data
    cat, col = _pick(rng, t.categories), _pick(rng, t.numbers)
    func, words = _aggregate(rng, col)
    sql = f"SELECT {cat.name}, {func}({col.name}) FROM {t.name} GROUP BY {cat.name};"
    return sql, {"cat": cat.name, "cat_word": cat.words, "num": col.name, "num_words": col.words,
                 "agg_words": words, "func": func}, ""  # fmt: skip


@_kind(
    "having_count", "aggregation", AGGREGATION,
    {
        "names": (
            "Which {cat_words} have more than {k} {k_noun}?",
            "List the {cat_words} with more than {k} {k_noun}.",
        ),
        "counts": (
            "Show each {cat_word} that has more than {k} {k_noun}, with the number of {plural}.",
            "For {cat_words} with more than {k} {k_noun}, how many {plural} does each have?",
        ),
    },
    "This query groups the {table} table by {cat} and keeps the groups with more than {count} rows (HAVING).",
    needs=("category",),
)  # fmt: skip
def _having_count(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.categories)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[col.name]] = counts.get(r[col.name], 0) + 1
    top = max(counts.values())
    if top < 2:
        return None
    count = _int(rng, 1, top - 1)
    variant = _pick(rng, ("names", "counts"))
    columns = col.name if variant == "names" else f"{col.name}, COUNT(*)"
    sql = f"SELECT {columns} FROM {t.name} GROUP BY {col.name} HAVING COUNT(*) > {count};"
    return sql, {"cat": col.name, "cat_word": col.words, "cat_words": col.plural, "count": count,
                 "k": _count_words(rng, count), "k_noun": t.singular if count == 1 else t.plural}, variant  # fmt: skip


@_kind(
    "having_aggregate", "aggregation", AGGREGATION,
    {
        "names": (
            "Which {cat_words} have a {agg_words} {num_words} {cmp} {x}?",
            "List the {cat_words} whose {agg_words} {num_words} is {cmp} {x}.",
        ),
        "values": (
            "Show the {agg_words} {num_words} per {cat_word}, only for {cat_words} where it is {cmp} {x}.",
            "For each {cat_word} with a {agg_words} {num_words} {cmp} {x}, show that {agg_words}.",
        ),
    },
    "This query groups the {table} table by {cat}, computes {func}({num}) and keeps groups above {x} with HAVING.",
    needs=("category", "number"),
)  # fmt: skip
def _having_aggregate(rng, data):
    ((t, rows),) = data
    cat, col = _pick(rng, t.categories), _pick(rng, t.numbers)
    func, words = ("SUM", "total") if col.additive and rng.random() < 0.6 else ("AVG", "average")
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r[cat.name], []).append(r[col.name])
    if len(groups) < 2:
        return None
    totals = sorted(sum(g) if func == "SUM" else sum(g) / len(g) for g in groups.values())
    if totals[-2] == totals[-1]:
        return None
    x = _nice_in(totals[-2], totals[-1], col.decimals)
    if x is None:
        return None
    x = _number_text(x, col.decimals)
    variant = _pick(rng, ("names", "values"))
    columns = cat.name if variant == "names" else f"{cat.name}, {func}({col.name})"
    sql = f"SELECT {columns} FROM {t.name} GROUP BY {cat.name} HAVING {func}({col.name}) > {x};"
    return sql, {"cat": cat.name, "cat_word": cat.words, "cat_words": cat.plural, "num": col.name,
                 "num_words": col.words, "agg_words": words, "func": func, "x": x,
                 "cmp": _pick(rng, _GREATER)}, variant  # fmt: skip


@_kind(
    "count_distinct", "aggregation", AGGREGATION,
    (
        "How many different {cat_words} are there in the {table} table?",
        "Count the distinct {cat_words} among {plural}.",
        "How many unique {cat_words} do the {plural} have?",
    ),
    "This query counts the distinct values of {cat} in the {table} table.",
    needs=("category",), weight=0.6,
)  # fmt: skip
def _count_distinct(rng, data):
    ((t, _rows),) = data
    col = _pick(rng, t.categories)
    return f"SELECT COUNT(DISTINCT {col.name}) FROM {t.name};", {"cat": col.name, "cat_words": col.plural}, ""


@_kind(
    "group_top", "aggregation", AGGREGATION,
    (
        "Which {cat_word} has the {extreme} {agg_words} {num_words}?",
        "Find the {cat_word} with the {extreme} {agg_words} {num_words} of {plural}.",
        "Among all {cat_words}, which one has the {extreme} {agg_words} {num_words}?",
    ),
    "This query groups the {table} table by {cat}, orders the groups by {func}({num}) {order} and keeps the first.",
    needs=("category", "number"),
)  # fmt: skip
def _group_top(rng, data):
    ((t, rows),) = data
    cat, col = _pick(rng, t.categories), _pick(rng, t.numbers)
    func, words = ("SUM", "total") if col.additive and rng.random() < 0.6 else ("AVG", "average")
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r[cat.name], []).append(r[col.name])
    highest = rng.random() < 0.7
    totals = [sum(g) if func == "SUM" else sum(g) / len(g) for g in groups.values()]
    if not _unique_extreme(totals, 1, highest):
        return None
    order = "DESC" if highest else "ASC"
    sql = f"SELECT {cat.name} FROM {t.name} GROUP BY {cat.name} ORDER BY {func}({col.name}) {order} LIMIT 1;"
    return sql, {"cat": cat.name, "cat_word": cat.words, "cat_words": cat.plural, "num": col.name,
                 "num_words": col.words, "agg_words": words, "func": func, "order": order,
                 "extreme": "highest" if highest else "lowest"}, ""  # fmt: skip


@_kind(
    "aggregate_year", "aggregation", AGGREGATION,
    (
        "What was the {agg_words} {num_words} of {plural} with a {date_words} in {y}?",
        "Calculate the {agg_words} {num_words} for {plural} whose {date_words} falls in {y}.",
        "Show the {agg_words} {num_words} of all {plural} from {y}.",
    ),
    "This query computes {func}({num}) over the rows of the {table} table whose {date} lies within {y}.",
    needs=("number", "date"),
)  # fmt: skip
def _aggregate_year(rng, data):
    ((t, rows),) = data
    col, date = _pick(rng, t.numbers), _pick(rng, t.dates)
    func, words = _aggregate(rng, col)
    y = _pick(rng, rows)[date.name][:4]
    sql = f"SELECT {func}({col.name}) FROM {t.name} WHERE {date.name} BETWEEN '{y}-01-01' AND '{y}-12-31';"
    return sql, {"num": col.name, "num_words": col.words, "agg_words": words, "func": func, "date": date.name,
                 "date_words": date.words, "y": y}, ""  # fmt: skip


# Single joins (a parent table and its child table) -------------------------------------------------


def _join_on(p: Table, c: Table) -> str:
    return f"{p.name} INNER JOIN {c.name} ON {p.name}.id = {c.name}.{c.ref.name}"


@_kind(
    "join_list", "join", SINGLE_JOIN,
    (
        "Show the {p_label_word} of each {p_singular} {p_phrase} and the {c_num_words} of its {c_plural}.",
        "List the {c_num_words} of all {c_plural} that belong to {p_plural} {p_phrase}, with the "
        "{p_singular} {p_label_word}.",
        "For {p_plural} {p_phrase}, what is the {c_num_words} of each of their {c_plural}?",
    ),
    "This query joins {p_table} and {c_table} on the {ref} key, keeps {p_plural} whose {cat} is '{v}', and "
    "returns the {p_label} with each {c_singular}'s {num}.",
    needs=("label", "category"), child_needs=("number",),
)  # fmt: skip
def _join_list(rng, data):
    (p, prows), (c, crows) = data
    cat, col = _pick(rng, p.categories), _pick(rng, c.numbers)
    linked = {r[c.ref.name] for r in crows}
    candidates = [r for r in prows if r["id"] in linked]
    if not candidates:
        return None
    v = _pick(rng, candidates)[cat.name]
    sql = (
        f"SELECT {p.name}.{p.label.name}, {c.name}.{col.name} FROM {_join_on(p, c)} "
        f"WHERE {p.name}.{cat.name} = {_quote(v)};"
    )
    return sql, {"cat": cat.name, "v": v, "p_phrase": _phrase(rng, cat, v), "num": col.name,
                 "c_num_words": col.words, "ref": c.ref.name}, ""  # fmt: skip


@_kind(
    "join_group", "join", SINGLE_JOIN,
    (
        "What is the {agg_words} {c_num_words} of {c_plural} for each {p_singular}?",
        "Show each {p_singular} with the {agg_words} {c_num_words} of its {c_plural}.",
        "Calculate the {agg_words} {c_num_words} per {p_singular}, using the {c_table} table.",
    ),
    "This query joins {p_table} and {c_table} on the {ref} key, groups by the {p_singular} {p_label} and "
    "computes {func}({num}) for each.",
    needs=("label",), child_needs=("number",), weight=1.3,
)  # fmt: skip
def _join_group(rng, data):
    (p, _prows), (c, _crows) = data
    col = _pick(rng, c.numbers)
    func, words = _aggregate(rng, col)
    sql = (
        f"SELECT {p.name}.{p.label.name}, {func}({c.name}.{col.name}) FROM {_join_on(p, c)} "
        f"GROUP BY {p.name}.{p.label.name};"
    )
    return sql, {"num": col.name, "c_num_words": col.words, "agg_words": words, "func": func,
                 "ref": c.ref.name}, ""  # fmt: skip


@_kind(
    "join_count_of", "join", SINGLE_JOIN,
    (
        "How many {c_plural} does the {p_singular} {x} have?",
        "Count the {c_plural} of {x}.",
        "What is the number of {c_plural} linked to the {p_singular} {x}?",
    ),
    "This query joins {p_table} and {c_table} on the {ref} key and counts the {c_plural} of the {p_singular} "
    "whose {p_label} is '{v}'.",
    needs=("label",), child_needs=(),
)  # fmt: skip
def _join_count_of(rng, data):
    (p, prows), (c, crows) = data
    linked = {r[c.ref.name] for r in crows}
    candidates = [r for r in prows if r["id"] in linked]
    if not candidates:
        return None
    v = _pick(rng, candidates)[p.label.name]
    sql = f"SELECT COUNT(*) FROM {_join_on(p, c)} WHERE {p.name}.{p.label.name} = {_quote(v)};"
    return sql, {"v": v, "x": _mention(rng, v), "ref": c.ref.name}, ""


@_kind(
    "join_child_filter", "join", SINGLE_JOIN,
    (
        "Which {p_plural} have {c_plural} {c_phrase}?",
        "List the {p_plural} that have at least one {c_singular} {c_phrase}.",
        "Find the {p_label_words} of {p_plural} with {c_plural} {c_phrase}.",
    ),
    "This query joins {p_table} and {c_table} on the {ref} key and returns each distinct {p_label} that has at "
    "least one {c_singular} whose {cat} is '{v}'.",
    needs=("label",), child_needs=("category",),
)  # fmt: skip
def _join_child_filter(rng, data):
    (p, prows), (c, crows) = data
    cat = _pick(rng, c.categories)
    ids = {r["id"] for r in prows}
    candidates = [r for r in crows if r[c.ref.name] in ids]
    if not candidates:
        return None
    v = _pick(rng, candidates)[cat.name]
    sql = (
        f"SELECT DISTINCT {p.name}.{p.label.name} FROM {_join_on(p, c)} "
        f"WHERE {c.name}.{cat.name} = {_quote(v)};"
    )
    return sql, {"cat": cat.name, "v": v, "c_phrase": _phrase(rng, cat, v), "ref": c.ref.name}, ""


@_kind(
    "join_group_parent_category", "join", SINGLE_JOIN,
    (
        "What is the {agg_words} {c_num_words} of {c_plural}, grouped by the {cat_word} of their {p_singular}?",
        "Show the {agg_words} {c_num_words} of {c_plural} for each {p_singular} {cat_word}.",
        "For each {cat_word} of {p_plural}, calculate the {agg_words} {c_num_words} of their {c_plural}.",
    ),
    "This query joins {p_table} and {c_table} on the {ref} key, groups by {p_table}.{cat} and computes "
    "{func}({num}).",
    needs=("category",), child_needs=("number",),
)  # fmt: skip
def _join_group_parent_category(rng, data):
    (p, _prows), (c, _crows) = data
    cat, col = _pick(rng, p.categories), _pick(rng, c.numbers)
    func, words = _aggregate(rng, col)
    sql = (
        f"SELECT {p.name}.{cat.name}, {func}({c.name}.{col.name}) FROM {_join_on(p, c)} "
        f"GROUP BY {p.name}.{cat.name};"
    )
    return sql, {"cat": cat.name, "cat_word": cat.words, "num": col.name, "c_num_words": col.words,
                 "agg_words": words, "func": func, "ref": c.ref.name}, ""  # fmt: skip


@_kind(
    "join_aggregate_filter", "join", SINGLE_JOIN,
    (
        "What is the {agg_words} {c_num_words} of {c_plural} belonging to {p_plural} {p_phrase}?",
        "Calculate the {agg_words} {c_num_words} of all {c_plural} of {p_plural} {p_phrase}.",
        "Find the {agg_words} {c_num_words} across {c_plural} whose {p_singular} is {p_phrase_short}.",
    ),
    "This query joins {p_table} and {c_table} on the {ref} key, keeps {p_plural} whose {cat} is '{v}' and "
    "computes {func}({num}) of their {c_plural}.",
    needs=("category",), child_needs=("number",),
)  # fmt: skip
def _join_aggregate_filter(rng, data):
    (p, prows), (c, crows) = data
    cat, col = _pick(rng, p.categories), _pick(rng, c.numbers)
    linked = {r[c.ref.name] for r in crows}
    candidates = [r for r in prows if r["id"] in linked]
    if not candidates:
        return None
    v = _pick(rng, candidates)[cat.name]
    func, words = _aggregate(rng, col)
    sql = f"SELECT {func}({c.name}.{col.name}) FROM {_join_on(p, c)} WHERE {p.name}.{cat.name} = {_quote(v)};"
    phrase = _phrase(rng, cat, v)
    short = cat.phrase.format(v=v) if cat.phrase else f"one with {cat.words} {v}"
    return sql, {"cat": cat.name, "v": v, "p_phrase": phrase, "p_phrase_short": short, "num": col.name,
                 "c_num_words": col.words, "agg_words": words, "func": func, "ref": c.ref.name}, ""  # fmt: skip


@_kind(
    "left_join_count", "join", SINGLE_JOIN,
    (
        "Show each {p_singular} and how many {c_plural} it has, including those with none.",
        "List every {p_singular} with its number of {c_plural}, even if it has none.",
        "How many {c_plural} does each {p_singular} have? Include {p_plural} without any.",
    ),
    "This query left-joins {c_table} to {p_table} on the {ref} key, so {p_plural} without {c_plural} are kept, "
    "and counts the matched {c_plural} per {p_label}.",
    needs=("label",), child_needs=(), weight=0.7,
)  # fmt: skip
def _left_join_count(rng, data):
    (p, _prows), (c, _crows) = data
    sql = (
        f"SELECT {p.name}.{p.label.name}, COUNT({c.name}.id) FROM {p.name} LEFT JOIN {c.name} "
        f"ON {p.name}.id = {c.name}.{c.ref.name} GROUP BY {p.name}.{p.label.name};"
    )
    return sql, {"ref": c.ref.name}, ""


@_kind(
    "join_child_threshold", "join", SINGLE_JOIN,
    (
        "List the {p_singular} {p_label_word} and {c_num_words} for every {c_singular} with {c_num_words} "
        "{cmp} {x}.",
        "Which {p_plural} have {c_plural} with {c_num_words} {cmp} {x}? Show the {c_num_words} too.",
        "Show the {p_label_words} of {p_plural} next to the {c_num_words} of their {c_plural}, for {c_plural} "
        "with {c_num_words} {cmp} {x}.",
    ),
    "This query joins {p_table} and {c_table} on the {ref} key and returns the {p_label} and {num} of "
    "{c_plural} where {num} {op} {x}.",
    needs=("label",), child_needs=("number",),
)  # fmt: skip
def _join_child_threshold(rng, data):
    (p, prows), (c, crows) = data
    col = _pick(rng, c.numbers)
    ids = {r["id"] for r in prows}
    linked = [r for r in crows if r[c.ref.name] in ids]
    greater = rng.random() < 0.6
    x = _threshold(rng, col, linked, greater)
    if x is None:
        return None
    op = ">" if greater else "<"
    sql = (
        f"SELECT {p.name}.{p.label.name}, {c.name}.{col.name} FROM {_join_on(p, c)} "
        f"WHERE {c.name}.{col.name} {op} {x};"
    )
    return sql, {"num": col.name, "c_num_words": col.words, "x": x, "op": op,
                 "cmp": _pick(rng, _GREATER if greater else _LESS), "ref": c.ref.name}, ""  # fmt: skip


# Subqueries -----------------------------------------------------------------------------------------


@_kind(
    "compare_average", "subquery", SUBQUERIES,
    (
        "Which {plural} have {num_words} {side} the average?",
        "List the {plural} whose {num_words} is {side} the average {num_words}.",
        "Find {plural} with {num_words} {side} the average of all {plural}.",
    ),
    "This query compares each row's {num} with the average from a subquery (SELECT AVG({num}) FROM {table}) and "
    "keeps the {label} of rows {side} it.",
    needs=("label", "number"), weight=1.5,
)  # fmt: skip
def _compare_average(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.numbers)
    values = [r[col.name] for r in rows]
    if min(values) == max(values):
        return None
    above = rng.random() < 0.6
    op, side = (">", "above") if above else ("<", "below")
    sql = f"SELECT {t.label.name} FROM {t.name} WHERE {col.name} {op} (SELECT AVG({col.name}) FROM {t.name});"
    return sql, {"num": col.name, "num_words": col.words, "side": side}, ""


@_kind(
    "equals_extreme", "subquery", SUBQUERIES,
    (
        "List all {plural} whose {num_words} equals the {extreme} {num_words} in the table, with that value.",
        "Show every {singular} that shares the {extreme} {num_words}, along with the {num_words}.",
        "Using a subquery, find the {plural} with the {extreme} {num_words} and show it.",
    ),
    "This query finds the {extreme} {num} with a subquery ({func}) and returns every {singular} with that value.",
    needs=("label", "number"),
)  # fmt: skip
def _equals_extreme(rng, data):
    ((t, _rows),) = data
    col = _pick(rng, t.numbers)
    func, extreme = ("MAX", "highest") if rng.random() < 0.6 else ("MIN", "lowest")
    sql = (
        f"SELECT {t.label.name}, {col.name} FROM {t.name} "
        f"WHERE {col.name} = (SELECT {func}({col.name}) FROM {t.name});"
    )
    return sql, {"num": col.name, "num_words": col.words, "extreme": extreme, "func": func}, ""


@_kind(
    "in_child_category", "subquery", SUBQUERIES,
    (
        "Which {p_plural} appear in the {c_table} table with {c_plural} {c_phrase}?",
        "Using a subquery, list the {p_plural} that have any {c_singular} {c_phrase}.",
        "Find the {p_label_words} of {p_plural} whose id is among the {c_plural} {c_phrase}.",
    ),
    "This query selects the {p_label} of {p_plural} whose id is IN a subquery of {c_table}.{ref} values for "
    "rows where {cat} is '{v}'.",
    needs=("label",), child_needs=("category",),
)  # fmt: skip
def _in_child_category(rng, data):
    (p, prows), (c, crows) = data
    cat = _pick(rng, c.categories)
    ids = {r["id"] for r in prows}
    candidates = [r for r in crows if r[c.ref.name] in ids]
    if not candidates:
        return None
    v = _pick(rng, candidates)[cat.name]
    sql = (
        f"SELECT {p.label.name} FROM {p.name} WHERE id IN "
        f"(SELECT {c.ref.name} FROM {c.name} WHERE {cat.name} = {_quote(v)});"
    )
    return sql, {"cat": cat.name, "v": v, "c_phrase": _phrase(rng, cat, v), "ref": c.ref.name}, ""


@_kind(
    "not_in_child", "subquery", SUBQUERIES,
    (
        "Which {p_plural} have no {c_plural}?",
        "List the {p_plural} without any {c_plural}.",
        "Find the {p_plural} that do not appear in the {c_table} table.",
    ),
    "This query selects the {p_label} of {p_plural} whose id is NOT IN the {ref} values of the {c_table} table.",
    needs=("label",), child_needs=(),
)  # fmt: skip
def _not_in_child(rng, data):
    (p, prows), (c, crows) = data
    linked = {r[c.ref.name] for r in crows}
    if all(r["id"] in linked for r in prows):
        return None
    sql = f"SELECT {p.label.name} FROM {p.name} WHERE id NOT IN (SELECT {c.ref.name} FROM {c.name});"
    return sql, {"ref": c.ref.name}, ""


@_kind(
    "category_above_average", "subquery", SUBQUERIES,
    (
        "Which {plural} {phrase} have {num_words} above the overall average?",
        "List the {plural} {phrase} whose {num_words} exceeds the average {num_words} of all {plural}.",
        "Find {plural} {phrase} with {num_words} greater than the average for the whole table.",
    ),
    "This query keeps rows of the {table} table where {cat} is '{v}' and {num} is greater than the overall "
    "average computed by a subquery.",
    needs=("label", "category", "number"),
)  # fmt: skip
def _category_above_average(rng, data):
    ((t, rows),) = data
    cat, col = _pick(rng, t.categories), _pick(rng, t.numbers)
    average = sum(r[col.name] for r in rows) / len(rows)
    above = [r for r in rows if r[col.name] > average + 1e-9]
    if not above:
        return None
    v = _pick(rng, above)[cat.name]
    sql = (
        f"SELECT {t.label.name} FROM {t.name} WHERE {cat.name} = {_quote(v)} "
        f"AND {col.name} > (SELECT AVG({col.name}) FROM {t.name});"
    )
    return sql, {"cat": cat.name, "v": v, "phrase": _phrase(rng, cat, v), "num": col.name,
                 "num_words": col.words}, ""  # fmt: skip


@_kind(
    "in_child_threshold", "subquery", SUBQUERIES,
    (
        "Which {p_plural} have at least one {c_singular} with {c_num_words} {cmp} {x}?",
        "List the {p_plural} that have {c_plural} with {c_num_words} {cmp} {x}.",
        "Using a subquery, find {p_plural} with any {c_singular} whose {c_num_words} is {cmp} {x}.",
    ),
    "This query selects {p_plural} whose id is IN a subquery of {c_table} rows with {num} {op} {x}.",
    needs=("label",), child_needs=("number",),
)  # fmt: skip
def _in_child_threshold(rng, data):
    (p, prows), (c, crows) = data
    col = _pick(rng, c.numbers)
    ids = {r["id"] for r in prows}
    linked = [r for r in crows if r[c.ref.name] in ids]
    greater = rng.random() < 0.6
    x = _threshold(rng, col, linked, greater)
    if x is None:
        return None
    op = ">" if greater else "<"
    sql = (
        f"SELECT {p.label.name} FROM {p.name} WHERE id IN "
        f"(SELECT {c.ref.name} FROM {c.name} WHERE {col.name} {op} {x});"
    )
    return sql, {"num": col.name, "c_num_words": col.words, "x": x, "op": op,
                 "cmp": _pick(rng, _GREATER if greater else _LESS)}, ""  # fmt: skip


@_kind(
    "above_group_average", "subquery", SUBQUERIES,
    (
        "Which {plural} have {num_words} above the average for their {cat_word}?",
        "List the {plural} whose {num_words} is higher than the average {num_words} of their {cat_word}.",
        "Find {plural} that beat the average {num_words} of {plural} with the same {cat_word}.",
    ),
    "This correlated subquery compares each {singular}'s {num} with the average {num} of rows sharing its {cat}.",
    needs=("label", "category", "number"),
)  # fmt: skip
def _above_group_average(rng, data):
    ((t, rows),) = data
    cat, col = _pick(rng, t.categories), _pick(rng, t.numbers)
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r[cat.name], []).append(r[col.name])
    if all(min(g) == max(g) for g in groups.values()):
        return None
    sql = (
        f"SELECT t1.{t.label.name} FROM {t.name} AS t1 WHERE t1.{col.name} > "
        f"(SELECT AVG(t2.{col.name}) FROM {t.name} AS t2 WHERE t2.{cat.name} = t1.{cat.name});"
    )
    return sql, {"cat": cat.name, "cat_word": cat.words, "num": col.name, "num_words": col.words}, ""


@_kind(
    "child_count_above", "subquery", SUBQUERIES,
    {
        "any": (
            "Which {p_plural} have at least one {c_singular}?",
            "List the {p_plural} that have {c_plural}.",
        ),
        "more": (
            "Which {p_plural} have more than {k} {k_noun}?",
            "List the {p_plural} with more than {k} {k_noun}.",
            "Find {p_plural} that have over {k} {k_noun}.",
        ),
    },
    "This query uses a correlated subquery to count each {p_singular}'s {c_plural} and keeps those with more "
    "than {count}.",
    needs=("label",), child_needs=(),
)  # fmt: skip
def _child_count_above(rng, data):
    (p, prows), (c, crows) = data
    ids = {r["id"] for r in prows}
    counts: dict[int, int] = {}
    for r in crows:
        if r[c.ref.name] in ids:
            counts[r[c.ref.name]] = counts.get(r[c.ref.name], 0) + 1
    if not counts:
        return None
    count = _int(rng, 0, max(counts.values()) - 1)
    sql = (
        f"SELECT {p.label.name} FROM {p.name} WHERE "
        f"(SELECT COUNT(*) FROM {c.name} WHERE {c.name}.{c.ref.name} = {p.name}.id) > {count};"
    )
    noun = c.singular if count == 1 else c.plural
    variant = "any" if count == 0 else "more"
    return sql, {"count": count, "k": _count_words(rng, count), "k_noun": noun}, variant


# Data manipulation ------------------------------------------------------------------------------------


def _join_words(parts: list[str]) -> str:
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


@_kind(
    "insert", "dml", BASIC,
    (
        "Insert a new {singular} with {values}.",
        "Add a record to the {table} table with {values}.",
        "Add a new {singular} to the {table} table: {values}.",
    ),
    "This query inserts one new row into the {table} table with the given values.",
    weight=1.3,
)  # fmt: skip
def _insert(rng, data):
    ((t, rows),) = data
    used = {r[t.label.name] for r in rows} if t.label else set()
    parts, literals = [], []
    for col in t.columns:
        if col.role == "id":
            value = len(rows) + 1
        elif col.role == "label":
            value = _pick(rng, [v for v in col.pool if v not in used])
        elif col.role == "category":
            value = _pick(rng, col.pool)
        elif col.role == "number":
            value = _draw_number(rng, col)
        elif col.role == "date":
            value = _draw_date(rng, col)
        else:
            value = _pick(rng, rows)[col.name]
        literal = _literal(col, value)
        literals.append(literal)
        parts.append(f"{col.words} {literal if col.role in ('label', 'date') else literal.strip(chr(39))}")
    sql = f"{t.insert_head}({', '.join(literals)});"
    return sql, {"values": _join_words(parts)}, ""


@_kind(
    "update_value", "dml", BASIC,
    (
        "Update the {num_words} of {x} to {y}.",
        "Set the {num_words} of the {singular} {x} to {y}.",
        "Change the {num_words} for {x} in the {table} table to {y}.",
    ),
    "This query sets {num} to {y} in the {table} table for the row whose {label} is '{v}'.",
    needs=("label", "number"),
)  # fmt: skip
def _update_value(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.numbers)
    row = _pick(rng, rows)
    y = _literal(col, _draw_number(rng, col))
    v = row[t.label.name]
    sql = f"UPDATE {t.name} SET {col.name} = {y} WHERE {t.label.name} = {_quote(v)};"
    return sql, {"num": col.name, "num_words": col.words, "y": y, "v": v, "x": _mention(rng, v)}, ""


@_kind(
    "update_scale", "dml", BASIC,
    {
        "raise": (
            "Increase the {num_words} of all {plural} {phrase} by {pct}%.",
            "Raise the {num_words} by {pct} percent for {plural} {phrase}.",
        ),
        "cut": (
            "Decrease the {num_words} of all {plural} {phrase} by {pct}%.",
            "Reduce the {num_words} by {pct} percent for {plural} {phrase}.",
        ),
        "add": (
            "Add {k} to the {num_words} of every {singular} {phrase}.",
            "Increase the {num_words} of {plural} {phrase} by {k}.",
        ),
    },
    "This query updates {num} ({change}) for the rows of the {table} table where {cat} is '{v}'.",
    needs=("category", "number"),
)  # fmt: skip
def _update_scale(rng, data):
    ((t, rows),) = data
    cat, col = _pick(rng, t.categories), _pick(rng, t.numbers)
    v = _pick(rng, rows)[cat.name]
    vars_ = {"cat": cat.name, "v": v, "phrase": _phrase(rng, cat, v), "num": col.name, "num_words": col.words}
    if col.decimals:
        pct = _pick(rng, (5, 10, 15, 20, 25))
        variant = _pick(rng, ("raise", "cut"))
        factor = f"{1 + pct / 100:.2f}" if variant == "raise" else f"{1 - pct / 100:.2f}"
        change = f"{col.name} * {factor}"
        vars_.update(pct=pct)
    else:
        k = max(col.step, _pick(rng, (1, 2, 5, 10, 100, 1000)) * col.step)
        k = min(k, max(col.step, int(col.high - col.low) // 10 // col.step * col.step))
        variant, change = "add", f"{col.name} + {k}"
        vars_.update(k=k)
    vars_["change"] = change
    return f"UPDATE {t.name} SET {col.name} = {change} WHERE {cat.name} = {_quote(v)};", vars_, variant


@_kind(
    "delete_by_label", "dml", BASIC,
    (
        "Delete the {singular} {x}.",
        "Remove {x} from the {table} table.",
        "Delete the record of {x} in the {table} table.",
    ),
    "This query deletes the row of the {table} table whose {label} is '{v}'.",
    needs=("label",),
)  # fmt: skip
def _delete_by_label(rng, data):
    ((t, rows),) = data
    v = _pick(rng, rows)[t.label.name]
    return f"DELETE FROM {t.name} WHERE {t.label.name} = {_quote(v)};", {"v": v, "x": _mention(rng, v)}, ""


@_kind(
    "delete_threshold", "dml", BASIC,
    (
        "Delete all {plural} with {num_words} {cmp} {x}.",
        "Remove the {plural} whose {num_words} is {cmp} {x}.",
        "Delete records from the {table} table where the {num_words} is {cmp} {x}.",
    ),
    "This query deletes the rows of the {table} table where {num} {op} {x}.",
    needs=("number",),
)  # fmt: skip
def _delete_threshold(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.numbers)
    greater = rng.random() < 0.4
    x = _threshold(rng, col, rows, greater)
    if x is None:
        return None
    op = ">" if greater else "<"
    cmp = _pick(rng, _GREATER if greater else _LESS)
    return f"DELETE FROM {t.name} WHERE {col.name} {op} {x};", {"num": col.name, "num_words": col.words,
                                                                   "x": x, "op": op, "cmp": cmp}, ""  # fmt: skip


@_kind(
    "update_category", "dml", BASIC,
    (
        "Change the {cat_word} of {x} to {w}.",
        "Set the {cat_word} of the {singular} {x} to {w}.",
        "Update the {table} table so that {x} has {cat_word} {w}.",
    ),
    "This query sets {cat} to '{w}' for the row of the {table} table whose {label} is '{v}'.",
    needs=("label", "category"),
)  # fmt: skip
def _update_category(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.categories)
    row = _pick(rng, rows)
    w = _pick(rng, [p for p in col.pool if p != row[col.name]])
    v = row[t.label.name]
    sql = f"UPDATE {t.name} SET {col.name} = {_quote(w)} WHERE {t.label.name} = {_quote(v)};"
    return sql, {"cat": col.name, "cat_word": col.words, "w": w, "v": v, "x": _mention(rng, v)}, ""


@_kind(
    "delete_before_date", "dml", BASIC,
    (
        "Delete {plural} with a {date_words} before {y}.",
        "Remove all {plural} whose {date_words} is earlier than January 1, {y}.",
        "Delete records from the {table} table with a {date_words} before {y}-01-01.",
    ),
    "This query deletes the rows of the {table} table whose {date} is before '{y}-01-01'.",
    needs=("date",),
)  # fmt: skip
def _delete_before_date(rng, data):
    ((t, rows),) = data
    col = _pick(rng, t.dates)
    years = sorted({r[col.name][:4] for r in rows})
    if len(years) < 2:
        return None
    y = _pick(rng, years[1:])
    sql = f"DELETE FROM {t.name} WHERE {col.name} < '{y}-01-01';"
    return sql, {"date": col.name, "date_words": col.words, "y": y}, ""


@_kind(
    "delete_by_parent", "dml", SUBQUERIES,
    (
        "Delete all {c_plural} belonging to {p_plural} {p_phrase}.",
        "Remove the {c_plural} of every {p_singular} {p_phrase}.",
    ),
    "This query deletes the {c_table} rows whose {ref} is IN a subquery of {p_table} ids where {cat} is '{v}'.",
    needs=("category",), child_needs=(), weight=0.6,
)  # fmt: skip
def _delete_by_parent(rng, data):
    (p, prows), (c, crows) = data
    cat = _pick(rng, p.categories)
    linked = {r[c.ref.name] for r in crows}
    candidates = [r for r in prows if r["id"] in linked]
    if not candidates:
        return None
    v = _pick(rng, candidates)[cat.name]
    sql = f"DELETE FROM {c.name} WHERE {c.ref.name} IN (SELECT id FROM {p.name} WHERE {cat.name} = {_quote(v)});"
    return sql, {"cat": cat.name, "v": v, "p_phrase": _phrase(rng, cat, v), "ref": c.ref.name}, ""


# --------------------------------------------------------------------------------------------------
# Drawing rows


def _candidates(kind: QueryKind) -> list[tuple[Domain, list[tuple[Table, ...]]]]:
    """Per domain, the tables (or parent/child pairs) a kind can be asked about."""
    found = []
    for domain in DOMAINS:
        if kind.child_needs is None:
            options = [(t,) for t in domain.tables if t.has(kind.needs)]
        else:
            options = [
                (domain.table(c.ref.parent), c)
                for c in domain.tables
                if c.ref and c.has(kind.child_needs) and domain.table(c.ref.parent).has(kind.needs)
            ]
        if options:
            found.append((domain, options))
    return found


_CANDIDATES = {kind.name: _candidates(kind) for kind in QUERY_KINDS}
_BUCKETS = tuple(BUCKET_WEIGHTS)
_BUCKET_CUM = tuple(sum(list(BUCKET_WEIGHTS.values())[: i + 1]) for i in range(len(_BUCKETS)))
_KINDS_BY_BUCKET = {b: [k for k in QUERY_KINDS if k.bucket == b and _CANDIDATES[k.name]] for b in _BUCKETS}
_KIND_CUM = {
    b: tuple(sum(k.weight for k in kinds[: i + 1]) for i in range(len(kinds)))
    for b, kinds in _KINDS_BY_BUCKET.items()
}


def question_template_count() -> int:
    """How many distinct question phrasings the generator knows (before filling in names and values)."""
    return sum(len(p) for kind in QUERY_KINDS for p in kind.questions.values())


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def _draw(rng: random.Random, row_id: int, verifier: "_Verifier | None") -> dict:
    for _ in range(200):
        bucket = rng.choices(_BUCKETS, cum_weights=_BUCKET_CUM)[0]
        kind = rng.choices(_KINDS_BY_BUCKET[bucket], cum_weights=_KIND_CUM[bucket])[0]
        domain, options = _pick(rng, _CANDIDATES[kind.name])
        tables = _pick(rng, options)
        data = [(tables[0], _fill(rng, tables[0]))]
        if len(tables) == 2:
            data.append((tables[1], _fill(rng, tables[1], [r["id"] for r in data[0][1]])))
        built = kind.build(rng, data)
        if built is None:
            continue
        sql, values, variant = built
        context_data = _with_distractor(rng, domain, data)
        inserts = _inserts(context_data)
        if verifier is not None and not verifier.check(inserts, sql, kind.bucket != "dml"):
            continue
        context = _context(context_data, inserts)
        names = _question_names(tables, values)
        question = _capitalize(_pick(rng, kind.questions[variant]).format(**names))
        return {
            "id": row_id,
            "domain": domain.name,
            "domain_description": domain.description,
            "sql_complexity": kind.complexity,
            "sql_complexity_description": COMPLEXITY_DESCRIPTIONS[kind.complexity],
            "sql_task_type": kind.task_type,
            "sql_task_type_description": TASK_DESCRIPTIONS[kind.task_type],
            "sql_prompt": question,
            "sql_context": context,
            "sql": sql,
            "sql_explanation": _capitalize(kind.explanations[variant].format(**names)),
        }
    raise RuntimeError(f"builtin generator: no valid query for row {row_id} after 200 draws")  # a bug


def _context(data: list[TableData], inserts: list[str]) -> str:
    """gretel's sql_context: each table's CREATE TABLE then its INSERT, on one line."""
    return " ".join(
        part for (table, _), insert in zip(data, inserts, strict=True) for part in (table.create, insert)
    )


def _question_names(tables: tuple[Table, ...], values: dict) -> dict:
    """The fields a question or explanation may name: the table's words (p_/c_ for a parent and child)."""
    names = tables[0].vars() if len(tables) == 1 else {**tables[0].vars("p_"), **tables[1].vars("c_")}
    names.update(values)
    return names


def _with_distractor(rng: random.Random, domain: Domain, data: list[TableData]) -> list[TableData]:
    """Sometimes add an unused table of the domain, as real schemas hold more than the query needs."""
    used = {t.name for t, _ in data}
    spare = [t for t in domain.tables if t.name not in used]
    if not spare or rng.random() >= DISTRACTOR_TABLE_CHANCE:
        return data
    extra = _pick(rng, spare)
    rows_by_name = {t.name: rows for t, rows in data}
    parent_rows = rows_by_name.get(extra.ref.parent) if extra.ref else None
    # an added parent holds at least the ids its child rows point to
    referenced = [r[t.ref.name] for t, rows in data if t.ref and t.ref.parent == extra.name for r in rows]
    parent_ids = [r["id"] for r in parent_rows] if parent_rows else None
    n = max([*referenced, _int(rng, *ROWS_PER_TABLE)])
    rows_by_name[extra.name] = _fill(rng, extra, parent_ids, n=n)
    return [(t, rows_by_name[t.name]) for t in domain.tables if t.name in rows_by_name]


class _Verifier:
    """Runs each row's INSERTs and gold query in one in-memory SQLite database, rolled back after each check.

    Every table's CREATE statement is fixed, so all of them run once up front (table names are unique
    across domains, or this fails at once); a check then costs a transaction, not a schema change:
    about 3x faster.
    """

    def __init__(self) -> None:
        self.connection = sqlite3.connect(":memory:", isolation_level=None)
        for domain in DOMAINS:
            for table in domain.tables:
                self.connection.execute(table.create)

    def check(self, inserts: list[str], sql: str, analytic: bool) -> bool:
        connection = self.connection
        try:
            connection.execute("BEGIN")
            for insert in inserts:
                connection.execute(insert)
            cursor = connection.execute(sql)
            if analytic:
                first = cursor.fetchone()
                return first is not None and any(value is not None for value in first)
            return cursor.rowcount >= 1
        except sqlite3.Error:
            return False
        finally:
            if connection.in_transaction:
                connection.execute("ROLLBACK")

    def close(self) -> None:
        self.connection.close()


def generate_builtin_rows(
    num_rows: int = DEFAULT_NUM_ROWS, seed: int = 42, verify: bool = True
) -> list[dict]:
    """`num_rows` text-to-SQL rows with ids 1..num_rows and gretel's columns (BUILTIN_COLUMNS).

    Deterministic for (num_rows, seed), and prefix-stable: more rows with the same seed extend fewer.
    With `verify`, every schema and gold query is run in SQLite (analytic queries must return a row,
    data-manipulation ones must touch one) and a failing draw is replaced.
    """
    if not 0 < num_rows < 2**32:
        raise SqlsftError(
            f"The builtin data set needs a positive number of rows, not {num_rows}.",
            f"Pass --num-rows N with N >= 1 (default {DEFAULT_NUM_ROWS}).",
        )
    verifier = _Verifier() if verify else None
    try:
        base = (seed % 2**64) << 32  # one generator per row: prefix-stable, and cheap to seed from an int
        return [_draw(random.Random(base | i), i, verifier) for i in range(1, num_rows + 1)]
    finally:
        if verifier is not None:
            verifier.close()
