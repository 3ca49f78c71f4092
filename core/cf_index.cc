#include "core/cf_index.h"

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace recsys::core {

namespace {

constexpr char kMagic[8] = {'R', 'E', 'C', 'S', 'Y', 'S', 'C', 'F'};
constexpr uint32_t kVersion = 1;

absl::Status CorruptIndex(const std::string& path, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(path, ": not a valid CF index: ", what));
}

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t num_items;
  uint32_t neighbors_per_item;
  float shrinkage;
  uint64_t num_neighbors;
};
static_assert(sizeof(Header) == 32, "CF index header must have no padding");
static_assert(sizeof(Neighbor) == 8, "CF index entry must be 8 bytes");

// The header's own checks: the magic and the version.
absl::Status CheckHeader(const std::string& path, const Header& header) {
  if (std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0)
    return CorruptIndex(path, "bad magic");
  if (header.version != kVersion) {
    return CorruptIndex(path,
                        absl::StrCat("version ", header.version, ", this server reads ", kVersion));
  }
  return absl::OkStatus();
}

// Orders by similarity, then by item index, so that the build is deterministic.
bool MoreSimilar(const Neighbor& a, const Neighbor& b) {
  return a.similarity != b.similarity ? a.similarity > b.similarity : a.item < b.item;
}

}  // namespace

CfIndex CfIndex::Build(int32_t num_items, const std::vector<std::vector<ItemIndex>>& baskets,
                       const CfBuildOptions& options, const ProgressFn& progress) {
  // Distinct items per customer and the inverted lists item -> customers.
  std::vector<std::vector<ItemIndex>> sets(baskets.size());
  std::vector<std::vector<int32_t>> buyers(num_items);
  for (size_t u = 0; u < baskets.size(); ++u) {
    sets[u] = baskets[u];
    std::sort(sets[u].begin(), sets[u].end());
    sets[u].erase(std::unique(sets[u].begin(), sets[u].end()), sets[u].end());
    for (ItemIndex i : sets[u]) buyers[i].push_back(static_cast<int32_t>(u));
  }

  const int k = std::max(0, options.neighbors_per_item);
  std::vector<std::vector<Neighbor>> lists(num_items);
  std::atomic<int32_t> next{0};
  std::atomic<int32_t> done{0};
  auto worker = [&] {
    std::vector<int32_t> counts(num_items, 0);  // Co-occurrence row accumulator.
    std::vector<ItemIndex> touched;
    std::vector<Neighbor> row;
    for (int32_t i = next++; i < num_items; i = next++) {
      touched.clear();
      for (int32_t u : buyers[i]) {
        for (ItemIndex j : sets[u]) {
          if (j == i) continue;
          if (counts[j]++ == 0) touched.push_back(j);
        }
      }
      row.clear();
      const double ci = static_cast<double>(buyers[i].size());
      for (ItemIndex j : touched) {
        const double cj = static_cast<double>(buyers[j].size());
        const double sim = counts[j] / (std::sqrt(ci * cj) + options.shrinkage);
        row.push_back(Neighbor{j, static_cast<float>(sim)});
        counts[j] = 0;
      }
      const size_t keep = std::min<size_t>(k, row.size());
      std::partial_sort(row.begin(), row.begin() + keep, row.end(), MoreSimilar);
      lists[i].assign(row.begin(), row.begin() + keep);
      int32_t d = ++done;
      if (progress && (d % 256 == 0 || d == num_items)) progress("similarity", d, num_items);
    }
  };
  const int threads = std::max(1, options.threads);
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();

  CfIndex index;
  index.neighbors_per_item_ = k;
  index.shrinkage_ = static_cast<float>(options.shrinkage);
  index.offsets_.assign(1, 0);
  for (const auto& list : lists) {
    index.entries_.insert(index.entries_.end(), list.begin(), list.end());
    index.offsets_.push_back(index.entries_.size());
  }
  return index;
}

float CfIndex::Similarity(ItemIndex from, ItemIndex to) const {
  for (const Neighbor& n : neighbors(from)) {
    if (n.item == to) return n.similarity;
  }
  return 0.0f;
}

absl::Status CfIndex::Save(const std::string& path) const {
  Header header;
  std::memcpy(header.magic, kMagic, sizeof(kMagic));
  header.version = kVersion;
  header.num_items = static_cast<uint32_t>(num_items());
  header.neighbors_per_item = static_cast<uint32_t>(neighbors_per_item_);
  header.shrinkage = shrinkage_;
  header.num_neighbors = entries_.size();

  std::string bytes(reinterpret_cast<const char*>(&header), sizeof(header));
  bytes.append(reinterpret_cast<const char*>(offsets_.data()), offsets_.size() * sizeof(uint64_t));
  bytes.append(reinterpret_cast<const char*>(entries_.data()), entries_.size() * sizeof(Neighbor));
  uint32_t crc = crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size());
  bytes.append(reinterpret_cast<const char*>(&crc), sizeof(crc));

  std::ofstream out(path, std::ios::binary);
  if (!out) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot write"));
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

absl::StatusOr<int32_t> CfIndex::ReadItemCount(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  Header header;
  if (!in.read(reinterpret_cast<char*>(&header), sizeof(header))) {
    return CorruptIndex(path, "file too short");
  }
  if (absl::Status s = CheckHeader(path, header); !s.ok()) return s;
  return static_cast<int32_t>(header.num_items);
}

absl::StatusOr<CfIndex> CfIndex::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  const std::streamsize size = in.tellg();
  in.seekg(0);
  std::string bytes(static_cast<size_t>(size), '\0');
  if (!in.read(bytes.data(), size)) return absl::DataLossError(absl::StrCat(path, ": read failed"));

  auto corrupt = [&](absl::string_view what) { return CorruptIndex(path, what); };
  Header header;
  if (bytes.size() < sizeof(Header) + sizeof(uint32_t)) return corrupt("file too short");
  std::memcpy(&header, bytes.data(), sizeof(header));
  if (absl::Status s = CheckHeader(path, header); !s.ok()) return s;
  const uint64_t expected = sizeof(Header) + (uint64_t{header.num_items} + 1) * sizeof(uint64_t) +
                            header.num_neighbors * sizeof(Neighbor) + sizeof(uint32_t);
  if (bytes.size() != expected) {
    return corrupt(absl::StrCat("size ", bytes.size(), " bytes, header implies ", expected));
  }
  uint32_t stored_crc;
  std::memcpy(&stored_crc, bytes.data() + bytes.size() - sizeof(uint32_t), sizeof(uint32_t));
  const uint32_t crc =
      crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size() - sizeof(uint32_t));
  if (crc != stored_crc) return corrupt("checksum mismatch");

  CfIndex index;
  index.neighbors_per_item_ = static_cast<int32_t>(header.neighbors_per_item);
  index.shrinkage_ = header.shrinkage;
  index.offsets_.resize(header.num_items + 1);
  const char* p = bytes.data() + sizeof(Header);
  std::memcpy(index.offsets_.data(), p, index.offsets_.size() * sizeof(uint64_t));
  p += index.offsets_.size() * sizeof(uint64_t);
  index.entries_.resize(header.num_neighbors);
  std::memcpy(index.entries_.data(), p, index.entries_.size() * sizeof(Neighbor));

  if (index.offsets_.front() != 0 || index.offsets_.back() != header.num_neighbors) {
    return corrupt("offsets do not span the entries");
  }
  for (size_t i = 1; i < index.offsets_.size(); ++i) {
    if (index.offsets_[i] < index.offsets_[i - 1]) return corrupt("offsets decrease");
  }
  for (const Neighbor& n : index.entries_) {
    if (n.item < 0 || static_cast<uint32_t>(n.item) >= header.num_items) {
      return corrupt(absl::StrCat("neighbour index ", n.item, " out of range"));
    }
    if (!std::isfinite(n.similarity)) return corrupt("non-finite similarity");
  }
  return index;
}

}  // namespace recsys::core
