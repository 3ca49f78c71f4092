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

// Indices into `scored` of the items to return, best first (see Ranker for the rules).
std::vector<size_t> SelectItems(const Bundle& bundle, const RecommendRequest& request,
                                int32_t top_k, const std::vector<Scored>& scored) {
  std::vector<size_t> order(scored.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto better = [&](size_t a, size_t b) {
    return scored[a].score != scored[b].score ? scored[a].score > scored[b].score
                                              : scored[a].item < scored[b].item;
  };
  const size_t k = static_cast<size_t>(top_k);
  if (request.max_per_category == 0 && request.mmr_lambda == 0.0) {
    const size_t keep = std::min(k, order.size());
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), better);
    order.resize(keep);
    return order;
  }
  std::sort(order.begin(), order.end(), better);
  absl::flat_hash_map<std::string, int> per_category;
  auto capped = [&](size_t i) {
    return request.max_per_category > 0 &&
           per_category[bundle.catalog().item(scored[i].item).category] >=
               request.max_per_category;
  };
  std::vector<size_t> chosen;
  auto choose = [&](size_t i) {
    chosen.push_back(i);
    ++per_category[bundle.catalog().item(scored[i].item).category];
  };
  size_t next = 0;  // Position in `order` from which plain selection continues.
  if (request.mmr_lambda > 0.0) {
    // Maximal Marginal Relevance over the best max(5 top_k, 50) candidates: repeatedly take the
    // one maximising lambda * relevance - (1 - lambda) * (largest similarity to those taken),
    // relevance being the score rescaled to [0, 1] within that pool.
    const double lambda = request.mmr_lambda;
    const size_t pool = std::min(order.size(), std::max<size_t>(5 * k, 50));
    double lo = 0.0, hi = 0.0;
    if (pool > 0) {
      hi = scored[order[0]].score;
      lo = scored[order[pool - 1]].score;
    }
    std::vector<size_t> remaining(order.begin(), order.begin() + pool);
    std::vector<double> max_sim(pool, 0.0);
    while (chosen.size() < k) {
      size_t best = remaining.size();
      double best_value = 0.0;
      for (size_t r = 0; r < remaining.size(); ++r) {
        if (capped(remaining[r])) continue;
        const double relevance = hi > lo ? (scored[remaining[r]].score - lo) / (hi - lo) : 1.0;
        const double value = lambda * relevance - (1.0 - lambda) * max_sim[r];
        if (best == remaining.size() || value > best_value) {
          best = r;
          best_value = value;
        }
      }
      if (best == remaining.size()) break;
      const size_t taken = remaining[best];
      choose(taken);
      remaining.erase(remaining.begin() + best);
      max_sim.erase(max_sim.begin() + best);
      for (size_t r = 0; r < remaining.size(); ++r) {
        max_sim[r] = std::max(
            max_sim[r], DiversitySimilarity(bundle, scored[remaining[r]].item, scored[taken].item));
      }
    }
    next = pool;
  }
  for (; next < order.size() && chosen.size() < k; ++next) {
    if (!capped(order[next])) choose(order[next]);
  }
  return chosen;
}

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

double CfContribution(const Bundle& bundle, const ResolvedHistory& history, size_t t,
                      ItemIndex item) {
  const ItemIndex from = history.items[t];
  if (from == item) return history.self_weights[t] * bundle.manifest().self_similarity;
  return history.weights[t] * bundle.cf_index().Similarity(from, item);
}

double PopularityScore(const ItemInfo& item) {
  return std::log1p(static_cast<double>(item.recent_popularity));
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

absl::Status Ranker::Rank(const Bundle& bundle, const RecommendRequest& request, int32_t top_k,
                          RankedList* out, int64_t now_unix) {
  const Catalog& catalog = bundle.catalog();
  const BundleManifest& manifest = bundle.manifest();
  ResponseMetadata& meta = out->metadata;

  // Category options need categories; refusing them beats silently ignoring them.
  if (request.max_per_category > 0 || !request.allow_categories.empty() ||
      !request.deny_categories.empty()) {
    if (!catalog.has_categories()) {
      const char* field = request.max_per_category > 0 ? "diversity.max_per_category"
                          : !request.allow_categories.empty() ? "filters.allow_categories"
                                                              : "filters.deny_categories";
      return absl::FailedPreconditionError(absl::StrCat(
          field, ": bundle ", manifest.version, " has no item categories"));
    }
    // A category name the bundle does not have is a caller's mistake, not an empty filter.
    for (const auto* list : {&request.allow_categories, &request.deny_categories}) {
      for (size_t i = 0; i < list->size(); ++i) {
        if (!std::binary_search(catalog.categories().begin(), catalog.categories().end(),
                                (*list)[i])) {
          return absl::InvalidArgumentError(absl::StrCat(
              list == &request.allow_categories ? "filters.allow_categories["
                                                : "filters.deny_categories[",
              i, "]: unknown category \"", (*list)[i], "\"; this bundle has ",
              absl::StrJoin(catalog.categories(), ", ")));
        }
      }
    }
  }

  // Sources and the weights in effect.
  out->sources = manifest.sources;
  for (const auto& [name, weight] : request.fusion_weights) {
    const std::string& wanted = name;  // Lambdas cannot capture structured bindings in C++17.
    auto it = std::find_if(out->sources.begin(), out->sources.end(),
                           [&](const SourceSpec& s) { return s.name == wanted; });
    if (it == out->sources.end()) {
      std::vector<std::string> names;
      for (const SourceSpec& s : manifest.sources) names.push_back(s.name);
      return absl::InvalidArgumentError(absl::StrCat("fusion.weights[\"", name,
                                                     "\"]: unknown source; this bundle has ",
                                                     absl::StrJoin(names, ", ")));
    }
    it->weight = weight;
  }
  // Index of a source in out->sources (out->sources.size() when absent).
  auto source_index = [&](const std::string& name) {
    return static_cast<size_t>(
        std::find_if(out->sources.begin(), out->sources.end(),
                     [&](const SourceSpec& s) { return s.name == name; }) -
        out->sources.begin());
  };
  const size_t cf_source = source_index("cf");

  // History -> catalogue indices.
  ResolvedHistory& history = out->history;
  for (size_t t = 0; t < request.history.size(); ++t) {
    std::optional<ItemIndex> index = catalog.Find(request.history[t].item_id);
    if (!index) {
      AddUnique(request.history[t].item_id, &meta.ignored_history_item_ids);
      continue;
    }
    history.items.push_back(*index);
    history.positions.push_back(static_cast<int32_t>(t));
  }
  history.weights = RecencyWeights(history.items.size(), manifest.recency_decay);
  history.self_weights = RecencyWeights(history.items.size(), manifest.self_recency_decay);

  // Candidates with their CF raw scores, accumulated in history order.
  absl::flat_hash_map<ItemIndex, double> cf_raw;
  if (!request.candidates_only) {
    const double self = manifest.self_similarity;
    for (size_t t = 0; t < history.items.size(); ++t) {
      // Neighbour lists never hold the item itself, so each (event, item) pair adds one term,
      // the same product CfContribution computes.
      if (self > 0) cf_raw[history.items[t]] += history.self_weights[t] * self;
      for (const Neighbor& n : bundle.cf_index().neighbors(history.items[t])) {
        cf_raw[n.item] += history.weights[t] * n.similarity;
      }
    }
  }
  // Models: score the whole catalogue once; their best items join the candidates. A model
  // whose source weighs 0 for this request adds nothing to any score, so it is not run over the
  // catalogue (at 1M items that is ~12 ms a model) and adds no candidates; the returned items'
  // raw scores are computed for them alone below.
  // model_of[s]: the model behind source s of out->sources, or -1.
  const int64_t request_time = request.context.time.value_or(now_unix);
  out->request_time = request_time;
  std::vector<int> model_of(out->sources.size(), -1);
  for (size_t m = 0; m < bundle.models().size(); ++m) {
    const ModelRunner* model = bundle.models()[m].get();
    const size_t s = source_index(model->name());
    if (s < model_of.size()) model_of[s] = static_cast<int>(m);
    ModelInput input = Featurize(manifest, model->shape(), request, history.positions,
                                 history.items, request_time);
    std::vector<float> scores;
    if (s < out->sources.size() && out->sources[s].weight != 0.0) {
      if (absl::Status status = model->ScoreAll(input, &scores); !status.ok()) return status;
      if (!request.candidates_only) {
        // An item that no history event links to has a CF raw score of exactly 0.
        for (ItemIndex i : BestItems(scores, kModelCandidates)) cf_raw.try_emplace(i, 0.0);
      }
    }
    out->model_inputs.push_back(std::move(input));
    out->model_scores.push_back(std::move(scores));
  }
  if (!bundle.models().empty()) meta.device = bundle.models().front()->device();
  const size_t pop_source = source_index("pop");
  const bool pop_on = pop_source < out->sources.size() && out->sources[pop_source].weight > 0;
  // A new shopper's "pop" source reads their country's recent purchases when the bundle has
  // enough of them; everyone else's the whole catalogue's.
  const CountryPopularity* country_pop =
      history.items.empty() ? bundle.country_popularity(request.context.country) : nullptr;
  if (country_pop != nullptr) out->popularity_country = request.context.country;
  if (!request.candidates_only && pop_on) {
    const std::vector<ItemIndex>& popular =
        country_pop != nullptr ? country_pop->items : bundle.recent_popular_items();
    for (size_t i = 0; i < popular.size() && i < kModelCandidates; ++i) {
      cf_raw.try_emplace(popular[i], 0.0);
    }
  }

  // A new shopper (no known event): what ranks is recent popularity and the models' reading of
  // the context; the response says so.
  if (history.items.empty() && !request.candidates_only) {
    meta.fallback_used = true;
    meta.fallback_reason = absl::StrCat(
        request.history.empty() ? "empty history" : "no history item is in the catalogue",
        pop_on || !bundle.models().empty()
            ? absl::StrCat(": ranked by recent popularity",
                           country_pop != nullptr ? " in " + request.context.country : "",
                           " and the models' reading of the context")
            : ": this bundle has no popularity or model source, so the list is back-filled "
              "with recently popular items");
  }

  int known_candidates = 0;
  for (const std::string& id : request.candidate_item_ids) {
    std::optional<ItemIndex> index = catalog.Find(id);
    if (!index) {
      AddUnique(id, &meta.ignored_candidate_item_ids);
      continue;
    }
    ++known_candidates;
    if (cf_raw.contains(*index)) continue;
    double raw = 0.0;
    for (size_t t = 0; t < history.items.size(); ++t) {
      raw += CfContribution(bundle, history, t, *index);
    }
    cf_raw.emplace(*index, raw);
  }
  if (request.candidates_only && known_candidates == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "candidate_item_ids: candidates_only is set but none of the ",
        request.candidate_item_ids.size(), " candidates is in the catalogue"));
  }

  // Filters, each counted.
  absl::flat_hash_set<ItemIndex> excluded;
  for (const std::string& id : request.exclude_item_ids) {
    std::optional<ItemIndex> index = catalog.Find(id);
    if (index) {
      excluded.insert(*index);
    } else {
      AddUnique(id, &meta.ignored_candidate_item_ids);
    }
  }
  const bool exclude_history = request.exclude_history.value_or(manifest.exclude_history_default);
  const absl::flat_hash_set<ItemIndex> history_set(history.items.begin(), history.items.end());
  const absl::flat_hash_set<std::string> allow(request.allow_categories.begin(),
                                               request.allow_categories.end());
  const absl::flat_hash_set<std::string> deny(request.deny_categories.begin(),
                                              request.deny_categories.end());
  auto filter_of = [&](ItemIndex i) -> const char* {
    const ItemInfo& info = catalog.item(i);
    if (excluded.contains(i)) return "exclude";
    if (exclude_history && history_set.contains(i)) return "history";
    if ((!allow.empty() && !allow.contains(info.category)) ||
        (!deny.empty() && deny.contains(info.category))) {
      return "category";
    }
    if ((request.min_price && info.price < *request.min_price) ||
        (request.max_price && info.price > *request.max_price)) {
      return "price";
    }
    return nullptr;
  };

  // Raw score of `item` from source number `s` of out->sources.
  auto raw_of = [&](size_t s, ItemIndex item, double cf_value) -> double {
    if (s == cf_source) return cf_value;
    if (s == pop_source) {
      if (country_pop == nullptr) return PopularityScore(catalog.item(item));
      auto it = country_pop->counts.find(item);
      return std::log1p(it == country_pop->counts.end() ? 0.0 : static_cast<double>(it->second));
    }
    // Every other source has a model (Bundle::Load checks it).
    return static_cast<double>(out->model_scores[model_of[s]][item]);
  };
  std::vector<Scored> scored;
  scored.reserve(cf_raw.size());
  auto add_scored = [&](ItemIndex item, double raw) {
    double score = 0.0;
    for (size_t s = 0; s < out->sources.size(); ++s) {
      const SourceSpec& spec = out->sources[s];
      if (spec.weight == 0.0) continue;  // Adds 0 (and an unrun model has no scores).
      score += spec.weight * (spec.slope * raw_of(s, item, raw) + spec.intercept);
    }
    if (request.popularity_penalty > 0) {
      score -= request.popularity_penalty * std::log1p(catalog.item(item).popularity);
    }
    scored.push_back({item, raw, score});
  };
  for (const auto& [item, raw] : cf_raw) {
    if (const char* filter = filter_of(item)) {
      ++meta.filtered_counts[filter];
      continue;
    }
    add_scored(item, raw);
  }
  meta.candidates_scored = static_cast<int32_t>(cf_raw.size());
  std::vector<size_t> chosen = SelectItems(bundle, request, top_k, scored);

  // Back-fill: too few candidates survived the filters (or the category cap), so popular items
  // that pass them join, scored like any candidate. Campaign lists are never back-filled.
  if (chosen.size() < static_cast<size_t>(top_k) && !request.candidates_only) {
    const size_t original = scored.size();
    const std::vector<ItemIndex>& order = bundle.recent_popular_items();
    for (size_t next = 0; next < order.size() && chosen.size() < static_cast<size_t>(top_k);) {
      // A batch of top_k passing items at a time, then select again.
      for (int added = 0; next < order.size() && added < top_k; ++next) {
        const ItemIndex item = order[next];
        if (cf_raw.contains(item) || filter_of(item) != nullptr) continue;
        double raw = 0.0;
        for (size_t t = 0; t < history.items.size(); ++t) {
          raw += CfContribution(bundle, history, t, item);
        }
        add_scored(item, raw);
        ++added;
      }
      chosen = SelectItems(bundle, request, top_k, scored);
    }
    for (size_t i : chosen) meta.backfilled |= i >= original;
    meta.candidates_scored += static_cast<int32_t>(scored.size() - original);
  }

  // The unrun models' scores of the returned items: one batched pass each.
  std::vector<ItemIndex> chosen_items;
  for (size_t i : chosen) chosen_items.push_back(scored[i].item);
  std::vector<std::vector<float>> chosen_scores(bundle.models().size());
  for (size_t m = 0; m < bundle.models().size(); ++m) {
    if (!out->model_scores[m].empty() || chosen_items.empty()) continue;
    if (absl::Status status = bundle.models()[m]->ScoreTargets(
            {out->model_inputs[m]}, chosen_items, &chosen_scores[m]);
        !status.ok()) {
      return status;
    }
  }

  out->items.clear();
  for (size_t r = 0; r < chosen.size(); ++r) {
    const Scored& c = scored[chosen[r]];
    RecommendedItem item;
    item.index = c.item;
    item.item_id = catalog.item(item.index).id;
    item.info = catalog.item(item.index);
    item.rank = static_cast<int32_t>(r + 1);
    item.score = c.score;
    for (size_t s = 0; s < out->sources.size(); ++s) {
      const SourceSpec& spec = out->sources[s];
      SourceScore& source = item.sources.emplace_back();
      source.source = spec.name;
      const int m = model_of[s];
      source.raw_score = m >= 0 && out->model_scores[m].empty() ? chosen_scores[m][r]
                                                                 : raw_of(s, item.index, c.cf_raw);
      source.normalized_score = spec.slope * source.raw_score + spec.intercept;
      source.weight = spec.weight;
      source.contribution = spec.weight * source.normalized_score;
      // Baseline: CF and pop score 0 without history or signal; a model scores its baseline
      // input.
      const double baseline_raw =
          model_of[s] < 0 ? 0.0 : bundle.models()[model_of[s]]->baseline_scores()[item.index];
      item.baseline_score += spec.weight * (spec.slope * baseline_raw + spec.intercept);
    }
    out->items.push_back(std::move(item));
  }
  return absl::OkStatus();
}

}  // namespace recsys::core
