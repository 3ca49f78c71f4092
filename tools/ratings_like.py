#!/usr/bin/python3
"""Writes a ratings-like version of a purchase log in the Online Retail II layout.

  /usr/bin/python3 tools/ratings_like.py --input=data/online-retail-ii/online_retail_ii.csv.gz \\
      --output=/tmp/ratings_like.csv.gz

Each customer-item pair appears once (at its first purchase, in its original invoice), with
quantity 1, price 1.0 and country "Unknown": no repeats, no quantities or prices, one country.
tools/evaluate.sh uses it to check that the bundle builder does the right thing on a log shaped
unlike Online Retail. Lines the data filter drops (no customer, cancellations) are left out.
"""

import argparse
import csv
import gzip
import os
import sys
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recsys_models as rm  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    customers = rm.read_purchases(args.input)
    opener = gzip.open if args.input.endswith(".gz") else open
    descriptions = {}
    with opener(args.input, "rt", encoding="utf-8", newline="") as f:
        for row in csv.reader(f):
            descriptions.setdefault(row[1].strip(), row[2])
    rows = []
    for customer, events in customers.items():
        seen = set()
        for t, invoice, code, _, _, _ in events:
            if code not in seen:
                seen.add(code)
                rows.append((t, invoice, code, customer))
    rows.sort()
    opener = gzip.open if args.output.endswith(".gz") else open
    with opener(args.output, "wt", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate",
                         "Price", "Customer ID", "Country"])
        for t, invoice, code, customer in rows:
            when = datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            writer.writerow([invoice, code, descriptions.get(code, ""), 1, when, "1.0", customer,
                             "Unknown"])
    print(f"wrote {len(rows)} lines from {len(customers)} customers to {args.output}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
