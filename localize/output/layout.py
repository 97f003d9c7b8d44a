"""Every file a run keeps in OUT (`--out`, default `localized/`), named in one place.

- results.jsonl, failures.jsonl, strings.jsonl: each job's result or failure, a store's texts
  (store, exported from the database); localize.lock: what each result came from (store);
  requests.jsonl: the audit log (store); batches.jsonl: batches not yet collected (store);
  localize.db: the state, rebuilt from the text files (store); .localize-run: held by the run
  writing OUT (store); results.csv, results.json: with --format csv, json (store).
- cost_report.json, cost_report.md: the bill; calibration.json, rate.json: where later
  estimates and --rpm auto start (run_report, merge).
- amazon/, woocommerce/, magento_products.csv, akeneo_products.csv,
  shopify_translations.csv: the shops' import files (shops/, each shop's own module);
  review.html: the review page (review); reviews.jsonl: people's edits, approvals and
  rejections, one a line (reviews, written through the store); deliveries.jsonl: what each
  webhook destination acknowledged (deliver).
"""

from __future__ import annotations

RESULTS = "results.jsonl"
FAILURES = "failures.jsonl"
STRINGS_FILE = "strings.jsonl"
LOCK = "localize.lock"
REQUESTS = "requests.jsonl"
BATCHES = "batches.jsonl"
DB = "localize.db"
HOLD = ".localize-run"
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
COST_JSON = "cost_report.json"
COST_MD = "cost_report.md"
CALIBRATION = "calibration.json"
RATE = "rate.json"
AMAZON_DIR = "amazon"  # a JSON_LISTINGS_FEED per SP-API region: NA.json, EU.json, FE.json
AMAZON_FEED = "amazon_listings_feed.json"  # the single feed an earlier version wrote
WOOCOMMERCE_DIR = "woocommerce"
SHOPEE_DIR = "shopee"  # the seller's Shopee template filled, per market: <locale>.xlsx
LAZADA_DIR = "lazada"  # the seller's Lazada template filled, per market: <locale>.xlsx
MAGENTO_FILE = "magento_products.csv"
AKENEO_FILE = "akeneo_products.csv"
SHOPIFY_TRANSLATIONS = "shopify_translations.csv"
REVIEW = "review.html"
REVIEWS = "reviews.jsonl"  # people's decisions: edits, approvals, rejections (reviews.py)
DELIVERIES = "deliveries.jsonl"  # the webhook ledger: each version a destination acknowledged (deliver.py)
