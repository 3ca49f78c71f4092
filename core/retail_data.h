#ifndef RECSYS_CORE_RETAIL_DATA_H_
#define RECSYS_CORE_RETAIL_DATA_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/catalog.h"

namespace recsys::core {

// Reports progress of a long offline step: `done` out of `total` units of `stage`.
using ProgressFn = std::function<void(absl::string_view stage, int64_t done, int64_t total)>;

// One purchase line of an Online Retail II CSV after the filter.
struct Purchase {
  ItemIndex item = 0;
  int64_t time = 0;  // Seconds since the epoch, reading the wall-clock time as UTC.
  double quantity = 0.0;
  double price = 0.0;
  int32_t invoice = 0;  // Numeric invoice number.
};

// The purchases of one customer, in time order (file order within a timestamp).
struct CustomerHistory {
  std::string customer_id;
  std::string country;  // Country of the customer's last purchase.
  std::vector<Purchase> purchases;
};

// Counts of what the filter kept and dropped, for logs and the manifest.
struct RetailFilterStats {
  int64_t rows = 0;
  int64_t kept = 0;
  int64_t no_customer = 0;
  int64_t not_an_invoice = 0;  // Cancellations ("C...") and adjustments ("A...").
  int64_t non_positive = 0;    // Quantity <= 0 or Price <= 0.
  int64_t non_product = 0;     // POST, DOT, M, BANK CHARGES, ...
  int64_t after_cutoff = 0;
};

// Filtered purchase data of an Online Retail II file.
struct RetailData {
  Catalog catalog{{}};
  std::vector<CustomerHistory> customers;  // Sorted by customer id.
  RetailFilterStats stats;
  // Per customer country: purchase lines of each item in the recent window (the one of
  // ItemInfo::recent_popularity), items without any left out.
  std::map<std::string, std::map<ItemIndex, int64_t>> recent_by_country;
};

struct RetailReadOptions {
  // Keep only rows strictly before this time (seconds since the epoch, wall clock as UTC).
  // Default: keep everything.
  int64_t cutoff_time = INT64_MAX;
  // ItemInfo::recent_popularity counts purchase lines in the last `recent_days` days of the
  // kept data (before the cut-off, or up to the last purchase). Default: 28.
  int recent_days = 28;
};

// Reads a CSV (optionally gzip-compressed) in the Online Retail II column layout
// `Invoice,StockCode,Description,Quantity,InvoiceDate,Price,CustomerID,Country` with a header
// and RFC 4180 quoting, and applies the filter of the data's README: CustomerID present, Invoice
// starting with a digit, Quantity > 0, Price > 0, StockCode not a non-product code. Items are
// indexed in order of first purchase. Malformed rows are an error naming the line.
absl::StatusOr<RetailData> ReadRetailCsv(const std::string& path, const RetailReadOptions& options,
                                         const ProgressFn& progress = nullptr);

// Parses "YYYY-MM-DD HH:MM:SS" or "YYYY-MM-DD" as UTC into seconds since the epoch.
absl::StatusOr<int64_t> ParseDateTime(absl::string_view text);

// Splits one CSV line into fields (RFC 4180 quoting, "" inside quotes is a quote).
// Returns false on an unterminated quote.
bool SplitCsvLine(absl::string_view line, std::vector<std::string>* fields);

}  // namespace recsys::core

#endif  // RECSYS_CORE_RETAIL_DATA_H_
