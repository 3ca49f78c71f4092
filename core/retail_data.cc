#include "core/retail_data.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/categorizer.h"

namespace recsys::core {

namespace {

const absl::flat_hash_set<std::string>& NonProductCodes() {
  static const auto* codes = new absl::flat_hash_set<std::string>{
      "POST",         "DOT",    "M",       "m",         "C2",   "D",    "S",       "B",
      "BANK CHARGES", "ADJUST", "ADJUST2", "AMAZONFEE", "PADS", "CRUK", "TEST001", "TEST002"};
  return *codes;
}

bool IsNonProduct(const std::string& code) {
  return NonProductCodes().contains(code) || absl::StartsWith(code, "gift_0001_");
}

// Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// Reads a whole file, inflating it if it is gzip (zlib reads plain files as they are).
absl::StatusOr<std::string> ReadAll(const std::string& path, const ProgressFn& progress) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  FILE* raw = fopen(path.c_str(), "rb");
  int64_t compressed_size = 0;
  if (raw != nullptr) {
    fseek(raw, 0, SEEK_END);
    compressed_size = ftell(raw);
    fclose(raw);
  }
  gzbuffer(file, 1 << 20);
  std::string data;
  std::vector<char> chunk(1 << 20);
  while (true) {
    int n = gzread(file, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int errnum = 0;
      std::string message = gzerror(file, &errnum);
      gzclose(file);
      return absl::DataLossError(absl::StrCat(path, ": ", message));
    }
    if (n == 0) break;
    data.append(chunk.data(), n);
    if (progress) progress("read", gzoffset(file), compressed_size);
  }
  gzclose(file);
  return data;
}

}  // namespace

absl::StatusOr<int64_t> ParseDateTime(absl::string_view text) {
  int y, mo, d, h = 0, mi = 0, s = 0;
  auto num = [&](size_t pos, size_t len, int* out) {
    return pos + len <= text.size() && absl::SimpleAtoi(text.substr(pos, len), out);
  };
  bool ok = (text.size() == 10 || text.size() == 19) && num(0, 4, &y) && text[4] == '-' &&
            num(5, 2, &mo) && text[7] == '-' && num(8, 2, &d);
  if (ok && text.size() == 19) {
    ok = (text[10] == ' ' || text[10] == 'T') && num(11, 2, &h) && text[13] == ':' &&
         num(14, 2, &mi) && text[16] == ':' && num(17, 2, &s);
  }
  if (!ok || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a date 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'"));
  }
  return DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

bool SplitCsvLine(absl::string_view line, std::vector<std::string>* fields) {
  fields->clear();
  std::string field;
  size_t i = 0;
  while (true) {
    field.clear();
    if (i < line.size() && line[i] == '"') {
      ++i;
      while (true) {
        if (i >= line.size()) return false;
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field.push_back('"');
            i += 2;
          } else {
            ++i;
            break;
          }
        } else {
          field.push_back(line[i++]);
        }
      }
      // Anything between the closing quote and the comma is kept, as lenient readers do.
      while (i < line.size() && line[i] != ',') field.push_back(line[i++]);
    } else {
      while (i < line.size() && line[i] != ',') field.push_back(line[i++]);
    }
    fields->push_back(field);
    if (i >= line.size()) return true;
    ++i;  // Skip the comma.
  }
}

namespace {

constexpr absl::string_view kHeaderPrefix =
    "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,";

// Accumulates the rows of one file: the filter, the items (spellings, prices) and the customers'
// purchases; then the catalogue and the recent counts.
class RetailReader {
 public:
  RetailReader(const std::string& path, const RetailReadOptions& options)
      : path_(path), options_(options) {}

  // One data row (8 fields, `line_no` for errors): counted, filtered, and kept or not.
  // Errors: INVALID_ARGUMENT naming the line and the field.
  absl::Status AddRow(const std::vector<std::string>& f, int64_t line_no);

  RetailData Finish() &&;

 private:
  struct ItemStats {
    absl::flat_hash_map<std::string, int64_t> spellings;
    std::vector<double> prices;
  };

  // Which filter drops the row, or nullptr when it is kept.
  int64_t* DroppedBy(const std::string& customer, const std::string& invoice, double quantity,
                     double price, const std::string& code, int64_t time);
  void Keep(const std::vector<std::string>& f, const std::string& code, const std::string& customer,
            const Purchase& purchase);
  std::vector<ItemInfo> Items();
  // Purchase lines in the last options.recent_days (before the cut-off, or the data's end),
  // per item into `items` and per country and item.
  std::map<std::string, std::map<ItemIndex, int64_t>> CountRecent(std::vector<ItemInfo>* items);

  const std::string& path_;
  const RetailReadOptions& options_;
  std::vector<std::string> item_ids_;
  std::vector<ItemStats> item_stats_;
  absl::flat_hash_map<std::string, ItemIndex> item_index_;
  absl::flat_hash_map<std::string, size_t> customer_index_;
  std::vector<CustomerHistory> customers_;
  RetailFilterStats stats_;
};

absl::Status RetailReader::AddRow(const std::vector<std::string>& f, int64_t line_no) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ":", line_no, ": ", what));
  };
  if (f.size() != 8) return bad(absl::StrCat("expected 8 fields, got ", f.size()));
  ++stats_.rows;
  const std::string& invoice = f[0];
  std::string code(absl::StripAsciiWhitespace(f[1]));
  double quantity, price;
  if (!absl::SimpleAtod(f[3], &quantity)) return bad(absl::StrCat("bad Quantity '", f[3], "'"));
  if (!absl::SimpleAtod(f[5], &price)) return bad(absl::StrCat("bad Price '", f[5], "'"));
  absl::StatusOr<int64_t> time = ParseDateTime(f[4]);
  if (!time.ok()) return bad(absl::StrCat("InvoiceDate: ", time.status().message()));
  std::string customer(absl::StripAsciiWhitespace(f[6]));
  // Some exports write customer ids as floats ("13085.0").
  if (absl::EndsWith(customer, ".0")) customer.resize(customer.size() - 2);
  if (int64_t* counter = DroppedBy(customer, invoice, quantity, price, code, *time)) {
    ++*counter;
    return absl::OkStatus();
  }
  int32_t invoice_no = 0;
  if (!absl::SimpleAtoi(invoice, &invoice_no)) {
    return bad(absl::StrCat("bad Invoice '", invoice, "'"));
  }
  ++stats_.kept;
  Keep(f, code, customer, Purchase{0, *time, quantity, price, invoice_no});
  return absl::OkStatus();
}

int64_t* RetailReader::DroppedBy(const std::string& customer, const std::string& invoice,
                                 double quantity, double price, const std::string& code,
                                 int64_t time) {
  if (customer.empty()) return &stats_.no_customer;
  if (invoice.empty() || !absl::ascii_isdigit(invoice[0])) return &stats_.not_an_invoice;
  if (!(quantity > 0) || !(price > 0)) return &stats_.non_positive;
  if (code.empty() || IsNonProduct(code)) return &stats_.non_product;
  if (time >= options_.cutoff_time) return &stats_.after_cutoff;
  return nullptr;
}

void RetailReader::Keep(const std::vector<std::string>& f, const std::string& code,
                        const std::string& customer, const Purchase& purchase) {
  auto [it, inserted] = item_index_.try_emplace(code, static_cast<ItemIndex>(item_ids_.size()));
  if (inserted) {
    item_ids_.push_back(code);
    item_stats_.emplace_back();
  }
  ItemStats& is = item_stats_[it->second];
  std::string description(absl::StripAsciiWhitespace(f[2]));
  if (!description.empty()) ++is.spellings[description];
  is.prices.push_back(purchase.price);

  auto [cit, cinserted] = customer_index_.try_emplace(customer, customers_.size());
  if (cinserted) {
    customers_.emplace_back();
    customers_.back().customer_id = customer;
  }
  CustomerHistory& history = customers_[cit->second];
  history.country = std::string(absl::StripAsciiWhitespace(f[7]));
  history.purchases.push_back(purchase);
  history.purchases.back().item = it->second;
}

std::vector<ItemInfo> RetailReader::Items() {
  std::vector<ItemInfo> items(item_ids_.size());
  for (size_t i = 0; i < item_ids_.size(); ++i) {
    ItemStats& is = item_stats_[i];
    items[i].id = item_ids_[i];
    // Most frequent spelling; ties go to the smallest string, so the result is deterministic.
    int64_t best = 0;
    for (const auto& [spelling, count] : is.spellings) {
      if (count > best || (count == best && spelling < items[i].description)) {
        best = count;
        items[i].description = spelling;
      }
    }
    // Tabs never occur in the data, but the catalogue file is tab-separated: make sure.
    std::replace(items[i].description.begin(), items[i].description.end(), '\t', ' ');
    // The data has no categories: derive them from the description (core/categorizer.h).
    items[i].category = CategoryOfDescription(items[i].description);
    size_t mid = is.prices.size() / 2;
    std::nth_element(is.prices.begin(), is.prices.begin() + mid, is.prices.end());
    double median = is.prices[mid];
    if (is.prices.size() % 2 == 0) {
      median = (median + *std::max_element(is.prices.begin(), is.prices.begin() + mid)) / 2;
    }
    items[i].price = median;
    items[i].popularity = static_cast<int64_t>(is.prices.size());
  }
  return items;
}

std::map<std::string, std::map<ItemIndex, int64_t>> RetailReader::CountRecent(
    std::vector<ItemInfo>* items) {
  int64_t last_time = 0;
  for (const CustomerHistory& c : customers_) {
    for (const Purchase& p : c.purchases) last_time = std::max(last_time, p.time);
  }
  const int64_t recent_end =
      options_.cutoff_time == INT64_MAX ? last_time + 1 : options_.cutoff_time;
  const int64_t recent_start = recent_end - int64_t{86400} * options_.recent_days;
  std::map<std::string, std::map<ItemIndex, int64_t>> recent_by_country;
  for (const CustomerHistory& c : customers_) {
    for (const Purchase& p : c.purchases) {
      if (p.time >= recent_start && p.time < recent_end) {
        ++(*items)[p.item].recent_popularity;
        ++recent_by_country[c.country][p.item];
      }
    }
  }
  return recent_by_country;
}

RetailData RetailReader::Finish() && {
  std::vector<ItemInfo> items = Items();
  RetailData result;
  result.recent_by_country = CountRecent(&items);
  for (CustomerHistory& c : customers_) {
    std::stable_sort(c.purchases.begin(), c.purchases.end(),
                     [](const Purchase& a, const Purchase& b) { return a.time < b.time; });
  }
  std::sort(customers_.begin(), customers_.end(),
            [](const CustomerHistory& a, const CustomerHistory& b) {
              return a.customer_id < b.customer_id;
            });
  result.catalog = Catalog(std::move(items));
  result.customers = std::move(customers_);
  result.stats = stats_;
  return result;
}

}  // namespace

absl::StatusOr<RetailData> ReadRetailCsv(const std::string& path, const RetailReadOptions& options,
                                         const ProgressFn& progress) {
  absl::StatusOr<std::string> data = ReadAll(path, progress);
  if (!data.ok()) return data.status();
  absl::string_view text = *data;
  RetailReader reader(path, options);
  std::vector<std::string> f;
  size_t pos = 0;
  const int64_t total = static_cast<int64_t>(text.size());
  for (int64_t line_no = 1; pos < text.size(); ++line_no) {
    size_t end = text.find('\n', pos);
    if (end == absl::string_view::npos) end = text.size();
    absl::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_no == 1) {
      if (absl::StartsWith(line, kHeaderPrefix)) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          path,
          ":1: expected the Online Retail II header "
          "'Invoice,StockCode,Description,Quantity,InvoiceDate,Price,CustomerID,Country'"));
    }
    if (line.empty()) continue;
    if (progress && line_no % 65536 == 0) progress("parse", static_cast<int64_t>(pos), total);
    if (!SplitCsvLine(line, &f)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": unterminated quote"));
    }
    if (absl::Status s = reader.AddRow(f, line_no); !s.ok()) return s;
  }
  if (progress) progress("parse", total, total);
  return std::move(reader).Finish();
}

}  // namespace recsys::core
