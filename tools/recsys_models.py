"""Sequential recommenders with the bundle's model contract, and the data they learn from.

Every model exported into a bundle is a TorchScript module with these methods, so that the C++
runner treats all models alike and attribution can differentiate with respect to the embedded
history and the context:

  embed(items: long[B, L], event_features: float[B, L, E]) -> float[B, L, D]
  encode(embedded: float[B, L, D], mask: float[B, L], context: float[B, C]) -> float[B, H]
  item_table() -> float[N, H]
  item_bias() -> float[N]

score(item i) = encode(...) . item_table()[i] + item_bias()[i]. Histories are left-padded to
L = max_history: the most recent event is at position L - 1; padding positions hold item index N
(the padding row of the embedding) and mask 0. `forward` returns the scores of all N items.

encode() is the user head over a sequence vector, and both parts are exported too, so that the
replay attribution (explain/replay.h) scores all its inputs from one pass: prefixes of a history
and further whole inputs (the history with side-features of its own, or without one event):

  prefix_sequences(embedded: float[B, L, D], mask: float[B, L]) -> float[L + B, S]
      row s <= L: the sequence vector of input 0's first s positions moved to the end
      (left-padded to L), i.e. its history as it stood after its first s - (L - m) events;
      rows 0..L - m are the empty history's. Row L + b (b = 1..B-1): the sequence vector of
      input b whole (replay's side-feature steps and leave-one-out inputs ride in the pass).
  user_vectors(sequences: float[B, S], context: float[B, C]) -> float[B, H]

with encode(embedded, mask, context) = user_vectors(row L of prefix_sequences, context). Both
encoders make a padded position (embedding 0) the same as no position, so a history of zero
embeddings is the empty history whatever its mask.

  release_item_table(half: bool)
      called by the server once it holds its own (compact) copy of item_table(): frees the
      module's tables that only item_table() and training read; with half the input embedding
      is kept in half precision (embed() still returns float).

Event side-features (E = 3), per history event: log1p(quantity), log1p(unit price),
log1p(days since the previous event). Context features: hour of day and day of week as sine and
cosine pairs, log1p(days since the last event), and a one-hot of the shopper's country over the
bundle's most frequent countries plus "other". A missing value is 0.
"""

import csv
import gzip
import math
from datetime import datetime, timezone
from typing import List

import torch
from torch import nn

EVENT_FEATURES = [
    ("log_quantity", "log1p(units bought)"),
    ("log_price", "log1p(unit price paid)"),
    ("log_gap_days", "log1p(days since the previous event)"),
]
TIME_CONTEXT = [
    ("hour_sin", "sin(2 pi hour / 24) of the request time"),
    ("hour_cos", "cos(2 pi hour / 24) of the request time"),
    ("dow_sin", "sin(2 pi weekday / 7) of the request time"),
    ("dow_cos", "cos(2 pi weekday / 7) of the request time"),
    ("log_recency_days", "log1p(days from the last history event to the request)"),
]
NON_PRODUCT = {"POST", "DOT", "M", "m", "C2", "D", "S", "B", "BANK CHARGES", "ADJUST", "ADJUST2",
               "AMAZONFEE", "PADS", "CRUK", "TEST001", "TEST002"}


def context_feature_names(countries):
    return [name for name, _ in TIME_CONTEXT] + ["country=" + c for c in countries] + \
        ["country=other"]


def event_features(quantity, price, gap_days):
    return [math.log1p(max(quantity, 0.0)), math.log1p(max(price, 0.0)),
            math.log1p(max(gap_days, 0.0))]


def context_features(time_s, last_event_time_s, country, countries):
    """The context vector of a request at `time_s` (seconds, UTC wall clock)."""
    t = datetime.fromtimestamp(time_s, tz=timezone.utc)
    hour = t.hour + t.minute / 60.0
    dow = t.weekday()
    recency = 0.0 if last_event_time_s is None else max(time_s - last_event_time_s, 0) / 86400.0
    values = [math.sin(2 * math.pi * hour / 24), math.cos(2 * math.pi * hour / 24),
              math.sin(2 * math.pi * dow / 7), math.cos(2 * math.pi * dow / 7),
              math.log1p(recency)]
    one_hot = [0.0] * (len(countries) + 1)
    one_hot[countries.index(country) if country in countries else len(countries)] = 1.0
    return values + one_hot


def parse_time(text):
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(
        tzinfo=timezone.utc).timestamp())


def read_purchases(path, cutoff_s=None):
    """Purchase lines after the data README's filter (the same one the C++ reader applies):
    {customer: [(time_s, invoice, stock_code, quantity, price, country), ...]} in file order."""
    opener = gzip.open if path.endswith(".gz") else open
    customers = {}
    times = {}  # parse_time per date text, which an invoice's lines share: 13.5 -> 4.6 s here.
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header[:6] != ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate",
                          "Price"]:
            raise ValueError(f"{path}: not in the Online Retail II layout")
        for row in reader:
            invoice, code, _, quantity, date, price, customer, country = row
            code = code.strip()
            customer = customer.strip()
            if customer.endswith(".0"):
                customer = customer[:-2]
            quantity, price = float(quantity), float(price)
            if not customer or not invoice[:1].isdigit() or quantity <= 0 or price <= 0:
                continue
            if not code or code in NON_PRODUCT or code.startswith("gift_0001_"):
                continue
            t = times.get(date)
            if t is None:
                t = times[date] = parse_time(date)
            if cutoff_s is not None and t >= cutoff_s:
                continue
            customers.setdefault(customer, []).append(
                (t, int(invoice), code, quantity, price, country.strip()))
    for events in customers.values():
        events.sort(key=lambda e: e[0])  # Stable: file order within a minute.
    return customers


class _Base(nn.Module):
    """Shared parts: item embedding with a padding row, event-feature projection, context
    fusion, output table and bias, and the item side-features.

    Item side-features (F columns, fixed per bundle: the trend of each item's purchases before
    the bundle's cut-off, its price, its category) sit beside the learned item vectors in
    item_table(); encode() returns, beside the user vector, how much this user's score weighs
    each feature, so score = user . vector + weights(user) . features + bias."""

    def __init__(self, num_items, max_history, num_event_features, num_context, dim,
                 item_features=None, dropout=0.0):
        super().__init__()
        self.num_items = num_items
        self.max_history = max_history
        self.dim = dim
        self.item_embedding = nn.Embedding(num_items + 1, dim, padding_idx=num_items)
        self.event_projection = nn.Linear(num_event_features, dim, bias=False)
        self.context_projection = nn.Linear(num_context, dim)
        self.output = nn.Embedding(num_items, dim)
        self.bias = nn.Parameter(torch.zeros(num_items))
        self.combine = nn.Linear(2 * dim, dim)
        if item_features is None:
            item_features = torch.zeros(num_items, 0)
        self.register_buffer("item_features", item_features.float().clone())
        self.feature_weights = nn.Linear(dim, item_features.size(1))
        self.dropout = nn.Dropout(dropout)

    @torch.jit.export
    def embed(self, items: torch.Tensor, event_features: torch.Tensor) -> torch.Tensor:
        return self.item_embedding(items).float() + self.event_projection(event_features)

    @torch.jit.export
    def item_table(self) -> torch.Tensor:
        return torch.cat([self.output.weight, self.item_features], dim=1)

    @torch.jit.export
    def item_table_rows(self, begin: int, end: int) -> torch.Tensor:
        """Rows [begin, end) of item_table(), without making the whole table: the server
        reads a large table in slices to keep its load-time memory low."""
        return torch.cat([self.output.weight[begin:end], self.item_features[begin:end]], dim=1)

    @torch.jit.export
    def item_bias(self) -> torch.Tensor:
        return self.bias

    @torch.jit.export
    def release_item_table(self, half: bool):
        """Called (on the scripted module) by the server once it holds its own copy of
        item_table(): frees the output table and the item features (nothing else that serving
        calls reads them; item_table() is empty afterwards), and with `half` keeps the input
        embedding in half precision (embed() still returns float). On an eager model the
        assignments below fail: a Parameter is expected there. At 1M items of 64 floats this frees 256 MB and the
        features, and halves another 256 MB."""
        self.output.weight = torch.zeros(0, self.dim)
        self.item_features = torch.zeros(0, self.item_features.size(1))
        self.release_training_tables()
        if half:
            self.item_embedding.weight = self.item_embedding.weight.half()

    def release_training_tables(self):
        """Frees what only training reads (per model kind); called by release_item_table."""
        pass

    @torch.jit.export
    def user_vectors(self, sequence: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """encode()'s result from the sequence vector [B, D] and the context: the user vector
        and its weights of the item features."""
        user = self.dropout(torch.tanh(self.combine(torch.cat(
            [sequence, torch.tanh(self.context_projection(context))], dim=1))))
        return torch.cat([user, self.feature_weights(user)], dim=1)

    def forward(self, items: torch.Tensor, event_features: torch.Tensor, mask: torch.Tensor,
                context: torch.Tensor) -> torch.Tensor:
        user = self.encode(self.embed(items, event_features), mask, context)
        return user @ self.item_table().t() + self.item_bias()

    def training_logits(self, items, event_features, mask, context, dynamic):
        """Scores of all items with the first dynamic.size(2) item features taken per example
        from `dynamic` [B, N, Fd] (the trend at the example's time) instead of the table."""
        table_in, table_out = self.training_tables()
        embedded = nn.functional.embedding(items, table_in, padding_idx=self.num_items)
        user = self.encode(embedded + self.event_projection(event_features), mask, context)
        fd = dynamic.size(2) if self.item_features.size(1) > 0 else 0
        dynamic = dynamic[:, :, :fd]
        vector, weights = user[:, :self.dim], user[:, self.dim:]
        static = self.item_features[:, fd:]
        logits = vector @ table_out.t() + weights[:, fd:] @ static.t() + self.bias
        return logits + torch.einsum("bf,bnf->bn", weights[:, :fd], dynamic)

    def training_tables(self):
        """The item tables training differentiates: input [N + 1, D] (padding row last) and
        output [N, D]."""
        return self.item_embedding.weight, self.output.weight

    def freeze(self):
        """Writes what training_tables computes into the tables the exported methods read."""


class GruRecommender(_Base):
    """GRU4Rec-style: a GRU over the embedded events; the state after the last one is the
    session vector. The GRU has no biases, so from the zero state a zero input (padding) keeps
    the state at exactly 0: a left-padded history is the GRU run over its events from the zero
    state, as GRU4Rec starts every session, and the state after each event is the sequence
    vector of the history up to it (prefix_sequences is one pass)."""

    def __init__(self, num_items, max_history, num_event_features, num_context, dim=64,
                 item_features=None, dropout=0.0):
        super().__init__(num_items, max_history, num_event_features, num_context, dim,
                         item_features, dropout)
        self.gru = nn.GRU(dim, dim, batch_first=True, bias=False)

    @torch.jit.export
    def encode(self, embedded: torch.Tensor, mask: torch.Tensor,
               context: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.dropout(embedded) * mask.unsqueeze(2))
        return self.user_vectors(out[:, -1, :], context)

    @torch.jit.export
    def prefix_sequences(self, embedded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(embedded * mask.unsqueeze(2))  # [B, L, D]: the state after each.
        return torch.cat([out.new_zeros((1, out.size(2))), out[0], out[1:, -1]], dim=0)


class CaserRecommender(_Base):
    """Caser-style CNN: horizontal convolutions of heights 1..4 (max-pooled over time) and a
    vertical convolution over the last L events.

    Training runs the convolutions as such (nn.Conv2d, the faster form on training batches);
    in eval mode (validation and every exported method) the same sums run as one matrix
    product of the events with all filter rows, summed along the window (the faster form on
    serving's few rows, one thread: prefix_sequences of 24 rows about 400 against 650-810 us,
    encode of one history about 115 against 200 us). A horizontal filter's max-pool of relu is
    relu of the max of its window sums (relu is non-decreasing). The two forms agree to float
    rounding (tests/tools/models_test.py)."""

    def __init__(self, num_items, max_history, num_event_features, num_context, dim=64,
                 item_features=None, dropout=0.0, horizontal=16, vertical=4):
        super().__init__(num_items, max_history, num_event_features, num_context, dim,
                         item_features, dropout)
        self.horizontal = nn.ModuleList(
            [nn.Conv2d(1, horizontal, (h, dim)) for h in range(1, 5)])
        self.vertical = nn.Conv2d(1, vertical, (max_history, 1))
        self.project = nn.Linear(4 * horizontal + vertical * dim, dim)

    @torch.jit.export
    def encode(self, embedded: torch.Tensor, mask: torch.Tensor,
               context: torch.Tensor) -> torch.Tensor:
        return self.user_vectors(self.sequences(self.dropout(embedded) * mask.unsqueeze(2)),
                                 context)

    def sequences(self, x: torch.Tensor) -> torch.Tensor:
        """The sequence vectors [B, S] of masked embedded histories x [B, L, D]."""
        if self.training:
            c = x.unsqueeze(1)  # [B, 1, L, D]
            pooled = []
            for conv in self.horizontal:
                pooled.append(torch.relu(conv(c)).squeeze(3).max(dim=2).values)
            return self.projected(pooled, self.vertical(c).flatten(1))
        pooled = [torch.relu(w.max(dim=1).values) for w in self.window_sums(x)]
        return self.projected(pooled, self.vertical_sums(x).flatten(1))

    def window_sums(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Per filter height h, each window's convolution response, [..., n - h + 1, F] for
        x [..., n, D], from one product of x with every filter row."""
        rows = [conv.weight[:, 0].permute(2, 1, 0).reshape(self.dim, -1)
                for conv in self.horizontal]  # Filter height h's row k: columns k*F..(k+1)*F.
        products = torch.matmul(x, torch.cat(rows, dim=1))
        out: List[torch.Tensor] = []
        column = 0
        for conv in self.horizontal:
            f, h = conv.weight.size(0), conv.weight.size(2)
            n = x.size(-2) - h + 1
            total = products[..., 0:n, column:column + f]
            for k in range(1, h):
                total = total + products[..., k:k + n, column + k * f:column + (k + 1) * f]
            bias = conv.bias
            assert bias is not None
            out.append(total + bias)
            column += h * f
        return out

    def vertical_sums(self, x: torch.Tensor) -> torch.Tensor:
        """The vertical convolution of windows x [..., L, D]: [..., V, D]."""
        bias = self.vertical.bias
        assert bias is not None
        return torch.matmul(self.vertical.weight[:, 0, :, 0], x) + bias.view(-1, 1)

    def projected(self, pooled: List[torch.Tensor], vertical: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.project(torch.cat(pooled + [vertical], dim=1)))

    @torch.jit.export
    def prefix_sequences(self, embedded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Input 0's prefixes are the L + 1 windows of z = [L zero rows, input 0] starting at
        # s <= L: the window sums over z give every window's values in one pass, and a
        # horizontal filter's max-pool over a window is a sliding max over its positions. The
        # further inputs are scored whole, as encode() does.
        length = embedded.size(1)
        masked = embedded * mask.unsqueeze(2)
        z = torch.cat([embedded.new_zeros((length, embedded.size(2))), masked[0]], dim=0)
        pooled = []
        for w in self.window_sums(z):  # [2L - h + 1, F]: the windows of width L - h + 1.
            pooled.append(torch.relu(w.unfold(0, w.size(0) - length, 1).max(dim=2).values))
        vertical = self.vertical_sums(z.unfold(0, length, 1).transpose(1, 2))  # [L + 1, V, D]
        prefixes = self.projected(pooled, vertical.flatten(1))
        return torch.cat([prefixes, self.sequences(masked[1:])], dim=0)  # [L + B, S]


class TextCnnCaser(CaserRecommender):
    """The Caser CNN over item vectors that a text CNN makes from the item descriptions (a
    content signal: items with few purchases get vectors from words they share with others).

    Item encoder: word embeddings of the description's first tokens, convolutions of widths
    1..3 max-pooled over the words, a projection to D. The history embeds each item by its
    content vector; the output table is a projection of it plus a learned per-item vector.
    freeze() writes both into the plain tables before export, so the TorchScript contract (and
    its cost at serving time) is the Caser's."""

    def __init__(self, num_items, max_history, num_event_features, num_context, dim=64,
                 item_features=None, dropout=0.0, tokens=None, vocabulary=1, words=32,
                 filters=64, vocabulary_map=None):
        super().__init__(num_items, max_history, num_event_features, num_context, dim,
                         item_features, dropout)
        self.register_buffer("tokens", tokens if tokens is not None else
                             torch.zeros(num_items, 1, dtype=torch.long))
        self.words = nn.Embedding(vocabulary + 1, words, padding_idx=0)
        self.text = nn.ModuleList([nn.Conv1d(words, filters, k, padding=k - 1)
                                   for k in (1, 2, 3)])
        self.content = nn.Linear(3 * filters, dim)
        self.output_projection = nn.Linear(dim, dim, bias=False)
        self.vocabulary = vocabulary_map or {}  # Word -> index, for warm starts.
        self.frozen = False
        with torch.no_grad():
            self.output.weight.mul_(0.1)

    def content_vectors(self):
        x = self.dropout(self.words(self.tokens)).transpose(1, 2)  # [N, words, T]
        pooled = [torch.relu(conv(x)).max(dim=2).values for conv in self.text]
        return torch.tanh(self.content(torch.cat(pooled, dim=1)))  # [N, D]

    def training_tables(self):
        if self.frozen:
            return super().training_tables()
        c = self.content_vectors()
        table_in = torch.cat([c, torch.zeros(1, c.size(1))], dim=0)
        return table_in, self.output_projection(c) + self.output.weight

    def release_training_tables(self):
        self.tokens = torch.zeros(0, self.tokens.size(1), dtype=torch.long)

    def freeze(self):
        with torch.no_grad():
            table_in, table_out = self.training_tables()
            self.item_embedding.weight.copy_(table_in)
            self.output.weight.copy_(table_out)
        self.frozen = True


def description_vocabulary(descriptions, min_items=2):
    """{word: index from 1}: the words of at least min_items of the descriptions."""
    counts = {}
    for words in map(_words, descriptions):
        for w in set(words):
            counts[w] = counts.get(w, 0) + 1
    return {w: i + 1 for i, w in enumerate(sorted(w for w, n in counts.items() if n >= min_items))}


def description_tokens(descriptions, vocabulary, max_tokens=8):
    """[N, max_tokens]: the indices of each description's first words in `vocabulary` (0: a
    word outside it, or padding)."""
    rows = [[vocabulary[w] for w in _words(d) if w in vocabulary][:max_tokens]
            for d in descriptions]
    return torch.tensor([r + [0] * (max_tokens - len(r)) for r in rows], dtype=torch.long)


def _words(description):
    return "".join(ch if ch.isalnum() else " " for ch in description.upper()).split()


def make_model(kind, num_items, max_history, num_context, dim, item_features=None, dropout=0.0,
               descriptions=None, vocabulary=None):
    """kind "rnn" (GRU4Rec), "cnn" (Caser; with `descriptions`, over text-CNN item vectors,
    words indexed by `vocabulary`, default description_vocabulary(descriptions))."""
    if kind == "cnn" and descriptions is not None:
        vocabulary = vocabulary or description_vocabulary(descriptions)
        return TextCnnCaser(num_items, max_history, len(EVENT_FEATURES), num_context, dim,
                            item_features, dropout,
                            description_tokens(descriptions, vocabulary), len(vocabulary),
                            vocabulary_map=vocabulary)
    cls = {"rnn": GruRecommender, "cnn": CaserRecommender}[kind]
    return cls(num_items, max_history, len(EVENT_FEATURES), num_context, dim, item_features,
               dropout)
