#!/usr/bin/python3
"""tools/recsys_models.py and the model parts of tools/train_models.py: the exported
TorchScript module serves exactly what training scored (the item features at the bundle's
cut-off, the text CNN's item vectors), and a warm start carries item rows over by item id.

  models_test.py SOURCE_DIR
"""

import os
import sys
import unittest

import torch

sys.path.insert(0, os.path.join(sys.argv[1], "tools"))
import recsys_models as rm  # noqa: E402
import train_models as tm  # noqa: E402

N, L, D, C = 6, 4, 8, 3
DESCRIPTIONS = ["RED HEART T-LIGHT HOLDER", "WHITE HEART LANTERN", "BLUE BAG", "JUMBO BAG RED",
                "RED RETROSPOT BAG", "PAPER CHAIN KIT"]


def request():
    return (torch.tensor([[N, 2, 0, 1], [N, N, N, 3]]), torch.rand(2, L, 3),
            torch.tensor([[0.0, 1, 1, 1], [0, 0, 0, 1]]), torch.rand(2, C))


def frozen_model(kind, descriptions, seed):
    """A seeded model of `kind` with 2 item features, in eval mode, frozen for export."""
    torch.manual_seed(seed)
    model = rm.make_model(kind, N, L, C, D, torch.rand(N, 2), 0.0, descriptions)
    model.eval()
    model.freeze()
    return model


class EveryModelKind:
    """Runs the test case's check(kind, descriptions) on the GRU, the Caser and the text-CNN
    Caser."""

    def test_rnn(self):
        self.check("rnn", None)

    def test_caser(self):
        self.check("cnn", None)

    def test_text_cnn(self):
        self.check("cnn", DESCRIPTIONS)


class ExportTest(EveryModelKind, unittest.TestCase):
    def check(self, kind, descriptions):
        torch.manual_seed(3)
        features = torch.rand(N, 5)  # 3 trend columns, then 2 static ones.
        model = rm.make_model(kind, N, L, C, D, features, 0.3, descriptions)
        model.eval()
        items, events, mask, context = request()
        with torch.no_grad():
            trained = model.training_logits(items, events, mask, context,
                                            features[:, :3].expand(2, N, 3))
        model.freeze()
        served = torch.jit.script(model)(items, events, mask, context)
        self.assertTrue(torch.allclose(served, trained, atol=1e-5), (served, trained))
        # The trend columns matter: other values give other scores.
        with torch.no_grad():
            other = model.training_logits(items, events, mask, context,
                                          torch.zeros(2, N, 3))
        self.assertFalse(torch.allclose(other, trained, atol=1e-3))

    def test_text_cnn_items_sharing_words_start_closer(self):
        # Content: before any training, items 2 and 3 (BLUE BAG, JUMBO BAG RED) share "BAG";
        # their vectors are closer than those of items without a shared word (2 and 5).
        torch.manual_seed(5)
        model = rm.make_model("cnn", N, L, C, D, None, 0.0, DESCRIPTIONS)
        model.eval()
        with torch.no_grad():
            c = model.content_vectors()
        self.assertLess(torch.dist(c[2], c[3]), torch.dist(c[2], c[5]))

    def test_vocabulary_keeps_words_of_two_items(self):
        vocabulary = rm.description_vocabulary(DESCRIPTIONS)
        self.assertEqual(sorted(vocabulary), ["BAG", "HEART", "RED"])
        tokens = rm.description_tokens(["RED BAG NEW"], vocabulary, max_tokens=4)
        self.assertEqual(tokens.tolist(), [[vocabulary["RED"], vocabulary["BAG"], 0, 0]])


class PrefixSequencesTest(EveryModelKind, unittest.TestCase):
    """prefix_sequences row s is the history after its first s - (L - m) events, written out
    here as the left-padded request a shorter history makes, and encoded the ordinary way."""

    def check(self, kind, descriptions):
        model = frozen_model(kind, descriptions, 4)
        scripted = torch.jit.script(model)
        events = torch.tensor([2, 0, 5])
        features = torch.rand(3, 3)
        m = len(events)
        items = torch.full((1, L), N)
        items[0, L - m:] = events
        full = torch.zeros(1, L, 3)
        full[0, L - m:] = features
        rows = scripted.prefix_sequences(scripted.embed(items, full), (items < N).float())
        self.assertEqual(rows.shape[0], L + 1)
        context = torch.rand(1, C)
        for s in range(L + 1):
            j = max(0, s - (L - m))
            shorter = torch.full((1, L), N)
            shorter_features = torch.zeros(1, L, 3)
            if j:
                shorter[0, L - j:] = events[:j]
                shorter_features[0, L - j:] = features[:j]
            expected = scripted.encode(scripted.embed(shorter, shorter_features),
                                       (shorter < N).float(), context)
            got = scripted.user_vectors(rows[s:s + 1], context)
            self.assertTrue(torch.allclose(got, expected, atol=1e-6), (kind, s, got, expected))


class CaserServingFormTest(unittest.TestCase):
    """In eval mode (validation and every exported method) the Caser sums its convolutions as
    one matrix product; they must equal the convolutions training runs."""

    def check_both(self, descriptions):
        torch.manual_seed(6)
        model = rm.make_model("cnn", N, L, C, D, torch.rand(N, 2), 0.0, descriptions)
        histories = torch.randn(3, L, D)
        histories[1, :2] = 0.0  # A shorter (masked) history.
        with torch.no_grad():
            model.train()
            trained = model.sequences(histories)
            prefixes = torch.cat([model.sequences(torch.cat(
                [torch.zeros(1, L - s, D), histories[:1, :s]], dim=1)) for s in range(L + 1)])
            model.eval()
            served = model.sequences(histories)
        rows = torch.jit.script(model).prefix_sequences(histories, torch.ones(3, L))
        self.assertTrue(torch.allclose(served, trained, atol=1e-5), (served, trained))
        self.assertTrue(torch.allclose(rows, torch.cat([prefixes, trained[1:]]), atol=1e-5))

    def test_caser(self):
        self.check_both(None)

    def test_text_cnn(self):
        self.check_both(DESCRIPTIONS)


class BatchedPrefixSequencesTest(EveryModelKind, unittest.TestCase):
    """With B inputs, prefix_sequences gives input 0's L + 1 prefix rows, then one row per
    further input: its whole history's sequence vector (inputs of different lengths and
    side-features, as replay's side-feature steps and shorter requests are)."""

    def check(self, kind, descriptions):
        model = frozen_model(kind, descriptions, 5)
        scripted = torch.jit.script(model)
        items = torch.full((3, L), N)
        items[0, L - 3:] = torch.tensor([2, 0, 5])
        items[1, L - 3:] = torch.tensor([2, 0, 5])
        items[2, L - 2:] = torch.tensor([4, 1])
        features = torch.rand(3, L, 3) * (items < N).unsqueeze(2)
        mask = (items < N).float()
        embedded = scripted.embed(items, features)
        rows = scripted.prefix_sequences(embedded, mask)
        self.assertEqual(rows.shape[0], L + 3)
        alone = scripted.prefix_sequences(embedded[:1], mask[:1])
        self.assertTrue(torch.allclose(rows[:L + 1], alone, atol=1e-6), kind)
        context = torch.rand(3, C)
        expected = scripted.encode(embedded, mask, context)
        got = scripted.user_vectors(torch.cat([rows[L:L + 1], rows[L + 1:]]), context)
        self.assertTrue(torch.allclose(got, expected, atol=1e-6), (kind, got, expected))



class ReleaseItemTableTest(EveryModelKind, unittest.TestCase):
    """release_item_table (called by the server once it holds its own copy of item_table())
    frees the output table and item features; with half=True the input embedding is kept in
    half precision and embed() still gives float, within half's rounding of the float one."""

    def check(self, kind, descriptions):
        model = frozen_model(kind, descriptions, 6)
        items, events, mask, context = request()
        for half in (False, True):
            scripted = torch.jit.script(model)
            before = scripted.encode(scripted.embed(items, events), mask, context)
            scripted.release_item_table(half)
            self.assertEqual(scripted.item_table().shape[0], 0)
            if descriptions:  # The text CNN's word tokens are training's only.
                self.assertEqual(scripted.tokens.shape[0], 0)
            embedded = scripted.embed(items, events)
            self.assertEqual(embedded.dtype, torch.float32)
            after = scripted.encode(embedded, mask, context)
            tolerance = 1e-2 if half else 0.0
            self.assertTrue(torch.allclose(after, before, atol=tolerance), (half, after, before))
            self.assertEqual(torch.equal(after, before), not half)


class ItemFeaturesTest(unittest.TestCase):
    def test_a_given_category_list_keeps_the_columns_of_another_catalogue(self):
        # The final catalogue has a category the validation one lacked ("toys"): with the
        # validation corpus's names the columns stay those a warm-started model learned.
        customers = {"1": [(86400 * 10, 1, "a", 1.0, 1.0, "UK")]}
        index = {"a": 0, "b": 1, "c": 2}
        f = tm.ItemFeatures(customers, index, [1.0, 2.0, 3.0], ["bags", "toys", "lights"],
                            9, 86400 * 12, category_names=["bags", "lights"])
        self.assertEqual(f.names[-2:], ["category=bags", "category=lights"])
        table = f.table(86400 * 12)
        self.assertEqual(table.shape, (3, 3 + 1 + 2))
        self.assertEqual(table[1, 4:].tolist(), [0.0, 0.0])  # toys: no column.
        self.assertEqual(table[2, 4:].tolist(), [0.0, 1.0])
        # The trend: item a's purchase on day 10 counts from day 11 on.
        self.assertEqual(f.trend[f.day(86400 * 10)][0].tolist(), [0.0, 0.0, 0.0])
        self.assertGreater(f.trend[f.day(86400 * 11)][0, 0].item(), 0.0)


class WarmStartTest(unittest.TestCase):
    def test_item_rows_follow_the_item_ids(self):
        torch.manual_seed(1)
        previous = rm.make_model("rnn", 3, L, C, D)
        model = rm.make_model("rnn", 4, L, C, D)
        fresh = model.output.weight[2].clone()
        # The new catalogue has one item more ("z", index 2) and another order.
        tm.warm_start(model, previous, {"a": 0, "b": 1, "c": 2}, {"c": 0, "a": 1, "z": 2, "b": 3})
        self.assertTrue(torch.equal(model.output.weight[0], previous.output.weight[2]))
        self.assertTrue(torch.equal(model.item_embedding.weight[3],
                                    previous.item_embedding.weight[1]))
        self.assertTrue(torch.equal(model.output.weight[2], fresh))
        self.assertTrue(torch.equal(model.item_embedding.weight[4], torch.zeros(D)))  # Padding.
        self.assertTrue(torch.equal(model.gru.weight_hh_l0, previous.gru.weight_hh_l0))


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
