#include "core/ranker.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/featurizer.h"

namespace recsys::core {

namespace {

// Appends `id` to `out` unless it is already there (the lists are short).
void AddUnique(const std::string& id, std::vector<std::string>* out) {
  if (std::find(out->begin(), out->end(), id) == out->end()) out->push_back(id);
}

// A candidate that passed the filters, with its CF raw score and fused score.
struct Scored {
  ItemIndex item;
  double cf_raw;
  double score;
};

// Similarity of two items for diversity: 1 within a category, else their CF similarity (the
// larger of the two directions; top-K lists are not symmetric).
double DiversitySimilarity(const Bundle& bundle, ItemIndex a, ItemIndex b) {
  const std::string& category = bundle.catalog().item(a).category;
  if (!category.empty() && category == bundle.catalog().item(b).category) return 1.0;
  return std::max(bundle.cf_index().Similarity(a, b), bundle.cf_index().Similarity(b, a));
}

// Picks the items to return, best first, honouring max_per_category (see Ranker for the rules).
class Selection {
 public:
  Selection(const Bundle& bundle, const RecommendRequest& request, int32_t top_k,
            const std::vector<Scored>& scored)
      : bundle_(bundle), request_(request), k_(static_cast<size_t>(top_k)), scored_(scored) {}

  // Indices into `scored`, in selection order.
  std::vector<size_t> Run() {
    std::vector<size_t> order(scored_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    auto better = [&](size_t a, size_t b) {
      return scored_[a].score != scored_[b].score ? scored_[a].score > scored_[b].score
                                                  : scored_[a].item < scored_[b].item;
    };
    if (request_.max_per_category == 0 && request_.mmr_lambda == 0.0) {
      const size_t keep = std::min(k_, order.size());
      std::partial_sort(order.begin(), order.begin() + keep, order.end(), better);
      order.resize(keep);
      return order;
    }
    std::sort(order.begin(), order.end(), better);
    size_t next = 0;  // Position in `order` from which plain selection continues.
    if (request_.mmr_lambda > 0.0) next = Mmr(order);
    for (; next < order.size() && chosen_.size() < k_; ++next) {
      if (!Capped(order[next])) Choose(order[next]);
    }
    return chosen_;
  }

 private:
  const std::string& CategoryOf(size_t i) const {
    return bundle_.catalog().item(scored_[i].item).category;
  }
  bool Capped(size_t i) {
    return request_.max_per_category > 0 &&
           per_category_[CategoryOf(i)] >= request_.max_per_category;
  }
  void Choose(size_t i) {
    chosen_.push_back(i);
    ++per_category_[CategoryOf(i)];
  }

  // Maximal Marginal Relevance over the best max(5 top_k, 50) candidates of `order` (sorted
  // best first): repeatedly takes the one maximising lambda * relevance - (1 - lambda) *
  // (largest similarity to those taken), relevance being the score rescaled to [0, 1] within
  // that pool. Returns the pool's size.
  size_t Mmr(const std::vector<size_t>& order) {
    const double lambda = request_.mmr_lambda;
    const size_t pool = std::min(order.size(), std::max<size_t>(5 * k_, 50));
    if (pool == 0) return 0;
    const double hi = scored_[order[0]].score, lo = scored_[order[pool - 1]].score;
    std::vector<size_t> remaining(order.begin(), order.begin() + pool);
    std::vector<double> max_sim(pool, 0.0);
    while (chosen_.size() < k_) {
      size_t best = remaining.size();
      double best_value = 0.0;
      for (size_t r = 0; r < remaining.size(); ++r) {
        if (Capped(remaining[r])) continue;
        const double relevance = hi > lo ? (scored_[remaining[r]].score - lo) / (hi - lo) : 1.0;
        const double value = lambda * relevance - (1.0 - lambda) * max_sim[r];
        if (best == remaining.size() || value > best_value) {
          best = r;
          best_value = value;
        }
      }
      if (best == remaining.size()) break;
      const size_t taken = remaining[best];
      Choose(taken);
      remaining.erase(remaining.begin() + best);
      max_sim.erase(max_sim.begin() + best);
      for (size_t r = 0; r < remaining.size(); ++r) {
        max_sim[r] = std::max(max_sim[r], DiversitySimilarity(bundle_, scored_[remaining[r]].item,
                                                              scored_[taken].item));
      }
    }
    return pool;
  }

  const Bundle& bundle_;
  const RecommendRequest& request_;
  const size_t k_;
  const std::vector<Scored>& scored_;
  std::vector<size_t> chosen_;
  absl::flat_hash_map<std::string, int> per_category_;
};

}  // namespace

std::vector<double> RecencyWeights(size_t n, double decay) {
  std::vector<double> weights(n);
  double w = 1.0, total = 0.0;
  for (size_t i = n; i-- > 0;) {
    weights[i] = w;
    total += w;
    w *= decay;
  }
  for (double& x : weights) x /= total;
  return weights;
}

std::vector<double> SelfWeights(const BundleManifest& manifest,
                                const std::vector<double>& age_days) {
  const size_t n = age_days.size();
  if (manifest.self_half_life_days <= 0 || n == 0) {
    return RecencyWeights(n, manifest.self_recency_decay);
  }
  // In log2 space, shifted so that the largest weight is 1 before normalising: the common
  // factor cancels, and no history is so old or long that every weight underflows to 0.
  std::vector<double> log_w(n);
  for (size_t i = 0; i < n; ++i) {
    log_w[i] = static_cast<double>(n - 1 - i) * std::log2(manifest.self_recency_decay) -
               age_days[i] / manifest.self_half_life_days;
  }
  const double top = *std::max_element(log_w.begin(), log_w.end());
  double total = 0.0;
  for (double& w : log_w) total += (w = std::exp2(w - top));
  for (double& w : log_w) w /= total;
  return log_w;
}

double CfContribution(const Bundle& bundle, const ResolvedHistory& history, size_t t,
                      ItemIndex item) {
  const ItemIndex from = history.items[t];
  if (from == item) return history.self_weights[t] * bundle.manifest().self_similarity;
  return history.weights[t] * bundle.cf_index().Similarity(from, item);
}

double PopularityRaw(const Bundle& bundle, const RankedList& ranked, ItemIndex item) {
  if (ranked.country_popularity == nullptr) {
    return PopularityScore(bundle.catalog().item(item).recent_popularity);
  }
  const auto& counts = ranked.country_popularity->counts;
  auto it = counts.find(item);
  return PopularityScore(it == counts.end() ? 0 : it->second);
}

const ModelInput* RankedList::first_model_input() const {
  for (const RankedSource& s : sources) {
    if (s.source.kind == SourceKind::kModel) return &s.input;
  }
  return nullptr;
}

std::vector<ItemIndex> BestItems(const std::vector<float>& scores, size_t m) {
  // A heap of the best so far whose top is the worst of them.
  using Entry = std::pair<float, ItemIndex>;
  auto better = [](const Entry& a, const Entry& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  m = std::min(m, scores.size());
  std::vector<Entry> best;
  best.reserve(m);
  for (size_t i = 0; i < scores.size() && m > 0; ++i) {
    const Entry e{scores[i], static_cast<ItemIndex>(i)};
    if (best.size() < m) {
      best.push_back(e);
      std::push_heap(best.begin(), best.end(), better);
    } else if (better(e, best.front())) {
      std::pop_heap(best.begin(), best.end(), better);
      best.back() = e;
      std::push_heap(best.begin(), best.end(), better);
    }
  }
  std::vector<ItemIndex> items;
  items.reserve(best.size());
  for (const Entry& e : best) items.push_back(e.second);
  return items;
}

void AddCfScores(const Bundle& bundle, const ResolvedHistory& history,
                 absl::flat_hash_map<ItemIndex, double>* out, size_t dense_limit) {
  const double self = bundle.manifest().self_similarity;
  const CfIndex& index = bundle.cf_index();
  const size_t catalog_size = static_cast<size_t>(bundle.catalog().size());
  size_t terms = out->size() + history.items.size();
  for (ItemIndex item : history.items) terms += index.neighbors(item).size();
  // Rehashing as it grew took a fifth of this step; no more items than the catalogue's.
  out->reserve(std::min(terms, catalog_size));
  // Neighbour lists never hold the item itself, so each (event, item) pair adds one term, the
  // same product CfContribution computes, in history order either way.
  auto add_terms = [&](auto&& add) {
    for (size_t t = 0; t < history.items.size(); ++t) {
      if (self > 0) add(history.items[t], history.self_weights[t] * self);
      for (const Neighbor& n : index.neighbors(history.items[t])) {
        add(n.item, history.weights[t] * n.similarity);
      }
    }
  };
  if (catalog_size > dense_limit || terms * 16 < catalog_size || !out->empty()) {
    add_terms([&](ItemIndex item, double term) { (*out)[item] += term; });
    return;
  }
  // An array of sums, then one insertion per item reached: hashing every term (20,000 at 200
  // events) was over a quarter of the evaluator's ranking time.
  std::vector<double> sums(catalog_size, 0.0);
  std::vector<bool> reached(catalog_size, false);
  std::vector<ItemIndex> order;  // The items reached, in the order reached.
  order.reserve(std::min(terms, catalog_size));
  add_terms([&](ItemIndex item, double term) {
    if (!reached[item]) {
      reached[item] = true;
      order.push_back(item);
    }
    sums[item] += term;
  });
  for (ItemIndex item : order) out->emplace(item, sums[item]);
}

namespace {

// One request's ranking: the steps of Ranker::Rank, each with its own contract, sharing the
// candidates found so far. Candidates map to their CF raw score, accumulated in history order.
class RankJob {
 public:
  RankJob(const Bundle& bundle, const RecommendRequest& request, int32_t top_k, RankedList* out,
          RankMemo* memo)
      : bundle_(bundle),
        request_(request),
        top_k_(static_cast<size_t>(top_k)),
        out_(*out),
        meta_(out->metadata),
        memo_(memo) {}

  // Category options need categories, and name categories the bundle has. Errors:
  // FAILED_PRECONDITION on a bundle without categories, INVALID_ARGUMENT for an unknown one.
  absl::Status CheckCategoryOptions() const;
  // The request's options with the bundle's defaults (a new shopper's where the bundle has
  // them: call after ResolveHistory), and its source table. Errors: those of
  // WithRequestWeights.
  absl::Status ResolveSources();
  // The known events of the history and their CF recency weights; unknown ids are reported.
  void ResolveHistory(int64_t request_time);
  // Each weighted model scores the catalogue once and adds its best kModelCandidates; an
  // unweighted model only gets its input (its returned items are scored in ScoreUnrunModels).
  absl::Status RunModels(int64_t request_time, const RowsToSave& rows_to_save);
  // CF neighbours of the history (and, with self_similarity, the history items).
  void AddCfCandidates();
  // The best kModelCandidates items of model source s, by its catalogue scores.
  std::vector<ItemIndex> ModelBest(const RankedSource& s);
  // The most recently popular items (in the shopper's country for a new shopper) when the
  // popularity source weighs > 0; says so in the metadata for a new shopper.
  void AddPopularCandidates();
  // The caller's candidate_item_ids. Errors: INVALID_ARGUMENT for candidates_only with none
  // known.
  absl::Status AddCallerCandidates();
  // Applies the filters (each counted) and fuses the survivors' scores.
  void FilterAndScore();
  // Chooses the returned items; back-fills with popular items when too few survived.
  void SelectAndBackFill();
  // Scores the returned items by the models that were not run over the catalogue, one batched
  // pass each. Errors: those of the models.
  absl::Status ScoreUnrunModels();
  // Writes the returned items with their per-source scores and baselines.
  void Emit();

 private:
  bool new_shopper() const { return out_.history.items.empty(); }
  const Source* FirstOfKind(SourceKind kind) const;
  double CfRaw(ItemIndex item) const;
  // The filter that removes `item`, or nullptr.
  const char* FilterOf(ItemIndex item) const;
  // Raw score of `item` from source s (a model's from its catalogue pass).
  double Raw(size_t s, ItemIndex item, double cf_raw) const;
  void AddScored(ItemIndex item, double cf_raw);

  const Bundle& bundle_;
  const RecommendRequest& request_;
  const size_t top_k_;
  RankedList& out_;
  ResponseMetadata& meta_;
  RankMemo* const memo_;  // Or nullptr.
  absl::flat_hash_map<ItemIndex, double> candidates_;
  absl::flat_hash_set<ItemIndex> excluded_, history_set_;
  absl::flat_hash_set<std::string> allow_, deny_;
  EffectiveOptions options_;  // Set by ResolveSources.
  std::vector<Scored> scored_;
  std::vector<size_t> chosen_;                     // Indices into scored_, in selection order.
  std::vector<std::vector<float>> chosen_scores_;  // Per source: unrun models' scores of chosen_.
};

absl::Status RankJob::CheckCategoryOptions() const {
  const Catalog& catalog = bundle_.catalog();
  const RecommendRequest& r = request_;
  if (r.max_per_category == 0 && r.allow_categories.empty() && r.deny_categories.empty()) {
    return absl::OkStatus();
  }
  // Refusing category options beats silently ignoring them.
  if (!catalog.has_categories()) {
    const char* field = r.max_per_category > 0        ? "diversity.max_per_category"
                        : !r.allow_categories.empty() ? "filters.allow_categories"
                                                      : "filters.deny_categories";
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": bundle ", bundle_.manifest().version, " has no item categories"));
  }
  // A category name the bundle does not have is a caller's mistake, not an empty filter.
  for (const auto* list : {&r.allow_categories, &r.deny_categories}) {
    for (size_t i = 0; i < list->size(); ++i) {
      if (!std::binary_search(catalog.categories().begin(), catalog.categories().end(),
                              (*list)[i])) {
        return absl::InvalidArgumentError(absl::StrCat(
            list == &r.allow_categories ? "filters.allow_categories[" : "filters.deny_categories[",
            i, "]: unknown category \"", (*list)[i], "\"; this bundle has ",
            absl::StrJoin(catalog.categories(), ", ")));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status RankJob::ResolveSources() {
  options_ = ResolveOptions(request_, bundle_.manifest(), new_shopper());
  out_.popularity_penalty = options_.popularity_penalty;
  absl::StatusOr<std::vector<Source>> sources =
      WithRequestWeights(bundle_.sources(), options_.fusion_weights);
  if (!sources.ok()) return sources.status();
  for (Source& source : *sources) out_.sources.push_back({std::move(source), {}, {}});
  return absl::OkStatus();
}

void RankJob::ResolveHistory(int64_t request_time) {
  ResolvedHistory& history = out_.history;
  for (size_t t = 0; t < request_.history.size(); ++t) {
    const HistoryEvent& event = request_.history[t];
    std::optional<ItemIndex> index = bundle_.catalog().Find(event.item_id);
    if (!index) {
      AddUnique(event.item_id, &meta_.ignored_history_item_ids);
      continue;
    }
    history.items.push_back(*index);
    history.positions.push_back(static_cast<int32_t>(t));
    history.age_days.push_back(AgeDays(request_time, event.timestamp));
  }
  const BundleManifest& manifest = bundle_.manifest();
  history.weights = RecencyWeights(history.items.size(), manifest.recency_decay);
  history.self_weights = SelfWeights(manifest, history.age_days);
}

absl::Status RankJob::RunModels(int64_t request_time, const RowsToSave& rows_to_save) {
  out_.request_time = request_time;
  for (RankedSource& s : out_.sources) {
    if (s.source.kind != SourceKind::kModel) continue;
    const ModelRunner& model = *s.source.model;
    s.input = Featurize(bundle_.manifest(), model.shape(), request_, out_.history.positions,
                        out_.history.items, request_time);
    if (meta_.device.empty()) meta_.device = model.device();  // The first model's.
    // A model that weighs 0 adds nothing to any score: not running it over the catalogue saves
    // ~12 ms a model at 1M items.
    if (!s.source.active()) continue;
    ModelInput base;
    std::vector<PrefixRow> rows;
    const absl::Status status =
        rows_to_save && rows_to_save(model.shape(), s.input, &base, &rows)
            ? model.ScoreAllSavingRows(s.input, base, rows, &s.scores, &s.saved)
            : model.ScoreAll(s.input, &s.scores);
    if (!status.ok()) return status;
    if (request_.candidates_only) continue;
    // An item that no history event links to has a CF raw score of exactly 0.
    for (ItemIndex i : ModelBest(s)) candidates_.try_emplace(i, 0.0);
  }
  return absl::OkStatus();
}

std::vector<ItemIndex> RankJob::ModelBest(const RankedSource& s) {
  if (memo_ == nullptr) return BestItems(s.scores, Ranker::kModelCandidates);
  auto [it, added] = memo_->best_items.try_emplace(s.source.spec.name);
  if (added) it->second = BestItems(s.scores, Ranker::kModelCandidates);
  return it->second;
}

void RankJob::AddCfCandidates() {
  if (request_.candidates_only) return;
  if (memo_ != nullptr && memo_->cf_scores) {
    // Room for the models' and popularity's candidates too: rehashing is what the memo saves.
    candidates_.reserve(memo_->cf_scores->size() +
                        (bundle_.models().size() + 1) * Ranker::kModelCandidates);
    candidates_.insert(memo_->cf_scores->begin(), memo_->cf_scores->end());
    return;
  }
  AddCfScores(bundle_, out_.history, &candidates_);
  if (memo_ != nullptr) memo_->cf_scores.emplace(candidates_.begin(), candidates_.end());
}

const Source* RankJob::FirstOfKind(SourceKind kind) const {
  for (const RankedSource& s : out_.sources) {
    if (s.source.kind == kind) return &s.source;
  }
  return nullptr;
}

void RankJob::AddPopularCandidates() {
  const Source* pop = FirstOfKind(SourceKind::kPopularity);
  const bool pop_on = pop != nullptr && pop->active();
  // A new shopper's popularity source reads their country's recent purchases when the bundle
  // has enough of them; everyone else's the whole catalogue's.
  const std::string& country = request_.context.country;
  out_.country_popularity = new_shopper() ? bundle_.country_popularity(country) : nullptr;
  if (out_.country_popularity != nullptr) out_.popularity_country = country;
  if (request_.candidates_only) return;
  if (pop_on) {
    const std::vector<ItemIndex>& popular = out_.country_popularity != nullptr
                                                ? out_.country_popularity->items
                                                : bundle_.recent_popular_items();
    for (size_t i = 0; i < popular.size() && i < Ranker::kModelCandidates; ++i) {
      candidates_.try_emplace(popular[i], 0.0);
    }
  }
  if (!new_shopper()) return;
  // A new shopper: what ranks is recent popularity and the models' reading of the context.
  meta_.fallback_used = true;
  meta_.fallback_reason = absl::StrCat(
      request_.history.empty() ? "empty history" : "no history item is in the catalogue",
      pop_on || !bundle_.models().empty()
          ? absl::StrCat(": ranked by recent popularity",
                         out_.country_popularity != nullptr ? " in " + country : "",
                         " and the models' reading of the context")
          : ": this bundle has no popularity or model source, so the list is back-filled "
            "with recently popular items");
}

double RankJob::CfRaw(ItemIndex item) const {
  double raw = 0.0;
  for (size_t t = 0; t < out_.history.items.size(); ++t) {
    raw += CfContribution(bundle_, out_.history, t, item);
  }
  return raw;
}

absl::Status RankJob::AddCallerCandidates() {
  int known = 0;
  for (const std::string& id : request_.candidate_item_ids) {
    std::optional<ItemIndex> index = bundle_.catalog().Find(id);
    if (!index) {
      AddUnique(id, &meta_.ignored_candidate_item_ids);
      continue;
    }
    ++known;
    if (!candidates_.contains(*index)) candidates_.emplace(*index, CfRaw(*index));
  }
  if (request_.candidates_only && known == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("candidate_item_ids: candidates_only is set but none of the ",
                     request_.candidate_item_ids.size(), " candidates is in the catalogue"));
  }
  return absl::OkStatus();
}

const char* RankJob::FilterOf(ItemIndex i) const {
  const ItemInfo& info = bundle_.catalog().item(i);
  if (excluded_.contains(i)) return "exclude";
  if (options_.exclude_history && history_set_.contains(i)) return "history";
  if ((!allow_.empty() && !allow_.contains(info.category)) ||
      (!deny_.empty() && deny_.contains(info.category))) {
    return "category";
  }
  if ((request_.min_price && info.price < *request_.min_price) ||
      (request_.max_price && info.price > *request_.max_price)) {
    return "price";
  }
  return nullptr;
}

double RankJob::Raw(size_t s, ItemIndex item, double cf_raw) const {
  const RankedSource& source = out_.sources[s];
  switch (source.source.kind) {
    case SourceKind::kCf:
      return cf_raw;
    case SourceKind::kPopularity:
      return PopularityRaw(bundle_, out_, item);
    case SourceKind::kModel:
      return source.scores[item];
  }
  return 0.0;
}

void RankJob::AddScored(ItemIndex item, double cf_raw) {
  double score = 0.0;
  for (size_t s = 0; s < out_.sources.size(); ++s) {
    const Source& source = out_.sources[s].source;
    // An inactive source adds 0 (and an unrun model has no scores).
    if (source.active()) score += Fuse(source.spec, Raw(s, item, cf_raw));
  }
  score -= PopularityPenalty(options_.popularity_penalty, bundle_.catalog().item(item));
  scored_.push_back({item, cf_raw, score});
}

void RankJob::FilterAndScore() {
  for (const std::string& id : request_.exclude_item_ids) {
    std::optional<ItemIndex> index = bundle_.catalog().Find(id);
    if (index) {
      excluded_.insert(*index);
    } else {
      AddUnique(id, &meta_.ignored_candidate_item_ids);
    }
  }
  history_set_.insert(out_.history.items.begin(), out_.history.items.end());
  allow_.insert(request_.allow_categories.begin(), request_.allow_categories.end());
  deny_.insert(request_.deny_categories.begin(), request_.deny_categories.end());
  scored_.reserve(candidates_.size());
  for (const auto& [item, cf_raw] : candidates_) {
    if (const char* filter = FilterOf(item)) {
      ++meta_.filtered_counts[filter];
      continue;
    }
    AddScored(item, cf_raw);
  }
  meta_.candidates_scored = static_cast<int32_t>(candidates_.size());
}

void RankJob::SelectAndBackFill() {
  const int32_t top_k = static_cast<int32_t>(top_k_);
  chosen_ = Selection(bundle_, request_, top_k, scored_).Run();
  // Too few candidates survived the filters (or the category cap): popular items that pass
  // them join, scored like any candidate, a batch of top_k at a time. Campaign lists are never
  // back-filled.
  if (chosen_.size() >= top_k_ || request_.candidates_only) return;
  const size_t original = scored_.size();
  const std::vector<ItemIndex>& order = bundle_.recent_popular_items();
  for (size_t next = 0; next < order.size() && chosen_.size() < top_k_;) {
    for (size_t added = 0; next < order.size() && added < top_k_; ++next) {
      const ItemIndex item = order[next];
      if (candidates_.contains(item) || FilterOf(item) != nullptr) continue;
      AddScored(item, CfRaw(item));
      ++added;
    }
    chosen_ = Selection(bundle_, request_, top_k, scored_).Run();
  }
  for (size_t i : chosen_) meta_.backfilled |= i >= original;
  meta_.candidates_scored += static_cast<int32_t>(scored_.size() - original);
}

absl::Status RankJob::ScoreUnrunModels() {
  chosen_scores_.resize(out_.sources.size());
  std::vector<ItemIndex> items;
  for (size_t i : chosen_) items.push_back(scored_[i].item);
  if (items.empty()) return absl::OkStatus();
  for (size_t s = 0; s < out_.sources.size(); ++s) {
    const RankedSource& source = out_.sources[s];
    if (source.source.kind != SourceKind::kModel || !source.scores.empty()) continue;
    if (absl::Status status =
            source.source.model->ScoreTargets({source.input}, items, &chosen_scores_[s]);
        !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

void RankJob::Emit() {
  out_.items.clear();
  for (size_t r = 0; r < chosen_.size(); ++r) {
    const Scored& c = scored_[chosen_[r]];
    RecommendedItem& item = out_.items.emplace_back();
    item.index = c.item;
    item.info = bundle_.catalog().item(c.item);
    item.item_id = item.info.id;
    item.rank = static_cast<int32_t>(r + 1);
    item.score = c.score;
    for (size_t s = 0; s < out_.sources.size(); ++s) {
      const Source& spec_source = out_.sources[s].source;
      const SourceSpec& spec = spec_source.spec;
      SourceScore& source = item.sources.emplace_back();
      source.source = spec.name;
      source.raw_score =
          chosen_scores_[s].empty() ? Raw(s, c.item, c.cf_raw) : chosen_scores_[s][r];
      source.normalized_score = Normalize(spec, source.raw_score);
      source.weight = spec.weight;
      source.contribution = Fuse(spec, source.raw_score);
      item.baseline_score += Fuse(spec, BaselineRaw(spec_source, c.item));
    }
  }
}

}  // namespace

absl::Status Ranker::Rank(const Bundle& bundle, const RecommendRequest& request, int32_t top_k,
                          RankedList* out, int64_t now_unix, const RowsToSave& rows_to_save,
                          RankMemo* memo) {
  RankJob job(bundle, request, top_k, out, memo);
  if (absl::Status s = job.CheckCategoryOptions(); !s.ok()) return s;
  const int64_t request_time = request.context.time.value_or(now_unix);
  job.ResolveHistory(request_time);
  if (absl::Status s = job.ResolveSources(); !s.ok()) return s;
  job.AddCfCandidates();
  if (absl::Status s = job.RunModels(request_time, rows_to_save); !s.ok()) return s;
  job.AddPopularCandidates();
  if (absl::Status s = job.AddCallerCandidates(); !s.ok()) return s;
  job.FilterAndScore();
  job.SelectAndBackFill();
  if (absl::Status s = job.ScoreUnrunModels(); !s.ok()) return s;
  job.Emit();
  return absl::OkStatus();
}

}  // namespace recsys::core
