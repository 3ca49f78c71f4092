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

Event side-features (E = 3), per history event: log1p(quantity), log1p(unit price),
log1p(days since the previous event). Context features: hour of day and day of week as sine and
cosine pairs, log1p(days since the last event), and a one-hot of the shopper's country over the
bundle's most frequent countries plus "other". A missing value is 0.
"""

import csv
import gzip
import math
from datetime import datetime, timezone

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
            t = parse_time(date)
            if cutoff_s is not None and t >= cutoff_s:
                continue
            customers.setdefault(customer, []).append(
                (t, int(invoice), code, quantity, price, country.strip()))
    for events in customers.values():
        events.sort(key=lambda e: e[0])  # Stable: file order within a minute.
    return customers


class _Base(nn.Module):
    """Shared parts: item embedding with a padding row, event-feature projection, context
    fusion, output table and bias."""

    def __init__(self, num_items, max_history, num_event_features, num_context, dim):
        super().__init__()
        self.num_items = num_items
        self.max_history = max_history
        self.item_embedding = nn.Embedding(num_items + 1, dim, padding_idx=num_items)
        self.event_projection = nn.Linear(num_event_features, dim, bias=False)
        self.context_projection = nn.Linear(num_context, dim)
        self.output = nn.Embedding(num_items, dim)
        self.bias = nn.Parameter(torch.zeros(num_items))
        self.combine = nn.Linear(2 * dim, dim)

    @torch.jit.export
    def embed(self, items: torch.Tensor, event_features: torch.Tensor) -> torch.Tensor:
        return self.item_embedding(items) + self.event_projection(event_features)

    @torch.jit.export
    def item_table(self) -> torch.Tensor:
        return self.output.weight

    @torch.jit.export
    def item_bias(self) -> torch.Tensor:
        return self.bias

    def _fuse(self, sequence: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.combine(torch.cat(
            [sequence, torch.tanh(self.context_projection(context))], dim=1)))

    def forward(self, items: torch.Tensor, event_features: torch.Tensor, mask: torch.Tensor,
                context: torch.Tensor) -> torch.Tensor:
        user = self.encode(self.embed(items, event_features), mask, context)
        return user @ self.item_table().t() + self.item_bias()


class GruRecommender(_Base):
    """GRU4Rec-style: a GRU over the embedded events; the state after the last one is the
    session vector."""

    def __init__(self, num_items, max_history, num_event_features, num_context, dim=64):
        super().__init__(num_items, max_history, num_event_features, num_context, dim)
        self.gru = nn.GRU(dim, dim, batch_first=True)

    @torch.jit.export
    def encode(self, embedded: torch.Tensor, mask: torch.Tensor,
               context: torch.Tensor) -> torch.Tensor:
        # Left padding: zeroed padding inputs before the first event keep the state near its
        # start; the state after position L-1 sees every real event.
        out, _ = self.gru(embedded * mask.unsqueeze(2))
        return self._fuse(out[:, -1, :], context)


class CaserRecommender(_Base):
    """Caser-style CNN: horizontal convolutions of heights 1..4 (max-pooled over time) and a
    vertical convolution over the last L events."""

    def __init__(self, num_items, max_history, num_event_features, num_context, dim=64,
                 horizontal=16, vertical=4):
        super().__init__(num_items, max_history, num_event_features, num_context, dim)
        self.horizontal = nn.ModuleList(
            [nn.Conv2d(1, horizontal, (h, dim)) for h in range(1, 5)])
        self.vertical = nn.Conv2d(1, vertical, (max_history, 1))
        self.sequence = nn.Linear(4 * horizontal + vertical * dim, dim)

    @torch.jit.export
    def encode(self, embedded: torch.Tensor, mask: torch.Tensor,
               context: torch.Tensor) -> torch.Tensor:
        x = (embedded * mask.unsqueeze(2)).unsqueeze(1)  # [B, 1, L, D]
        pooled = []
        for conv in self.horizontal:
            pooled.append(torch.relu(conv(x)).squeeze(3).max(dim=2).values)
        vertical = self.vertical(x).flatten(1)
        sequence = torch.relu(self.sequence(torch.cat(pooled + [vertical], dim=1)))
        return self._fuse(sequence, context)


def make_model(kind, num_items, max_history, num_context, dim):
    cls = {"rnn": GruRecommender, "cnn": CaserRecommender}[kind]
    return cls(num_items, max_history, len(EVENT_FEATURES), num_context, dim)
