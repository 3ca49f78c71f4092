#include "core/categorizer.h"

#include <cctype>
#include <vector>

#include "absl/strings/str_split.h"

namespace recsys::core {

namespace {

struct Rule {
  const char* category;
  std::vector<const char*> keywords;  // Upper case; several words separated by spaces.
};

// Ordered: the first matching rule wins (see the header).
const std::vector<Rule>& Rules() {
  static const auto* rules = new std::vector<Rule>{
      {"seasonal",
       {"CHRISTMAS", "XMAS", "ADVENT", "SANTA", "REINDEER", "SNOWFLAKE", "NATIVITY", "BAUBLE",
        "BAUBLES", "EASTER", "HALLOWEEN", "VALENTINE"}},
      {"jewellery & accessories",
       {"PARASOL",  "FAN",         "CLIPS",    "KEY FOB", "SEWING KIT", "NECKLACE", "BRACELET",
        "EARRINGS", "RING",        "RINGS",    "BEAD",    "BEADS",      "BEADED",   "CHARM",
        "DIAMANTE", "HAIR",        "PURSE",    "HANDBAG", "BROOCH",     "PENDANT",  "BANGLE",
        "UMBRELLA", "KEYRING",     "JEWELLED", "BLING",   "COMB",       "SLIPPERS", "GLOVES",
        "SCARF",    "HAND WARMER", "PASSPORT", "WALLET",  "SUNGLASSES"}},
      {"bags", {"BAG", "BAGS", "TOTE", "SHOPPER", "RUCKSACK", "BACKPACK"}},
      {"candles & lighting",
       {"CANDLE", "CANDLES", "T LIGHT", "TEALIGHT", "TEALIGHTS", "LANTERN", "LIGHT", "LIGHTS",
        "LAMP", "LAMPSHADE", "INCENSE", "OIL BURNER", "CANDLESTICK", "CHANDELIER"}},
      {"party", {"PARTY", "BALLOON", "BALLOONS", "BUNTING", "BIRTHDAY", "CONFETTI"}},
      {"toys & games",
       {"BUILDING BLOCK", "SKIPPING ROPE", "SPINNING TOPS", "MODELLING CLAY", "PAINT SET",
        "COLOURING",      "BINGO",         "SNAKES",        "GLIDERS",        "KNITTING NANCY",
        "STENCIL",        "PIGGY BANK",    "TOY",           "TOYS",           "GAME",
        "GAMES",          "PUZZLE",        "JIGSAW",        "DOLL",           "DOLLY",
        "SPACEBOY",       "DOMINOES",      "SKITTLES",      "PLAYHOUSE",      "SOLDIERS",
        "TEDDY",          "FELTCRAFT",     "CHILDRENS",     "CHILDS",         "KIDS",
        "MAGIC"}},
      {"stationery & wrap",
       {"TAGS",    "NOTEBOOKS", "MEMO BOARD", "MEMOBOARD", "CHALK",    "BLACK BOARD", "CARD",
        "CARDS",   "WRAP",      "PAPER",      "NOTEBOOK",  "PENCIL",   "PENCILS",     "PEN",
        "PENS",    "STICKER",   "STICKERS",   "TAPE",      "ENVELOPE", "ENVELOPES",   "CALENDAR",
        "BOOK",    "NOTEPAD",   "ERASER",     "STAMP",     "CRAYONS",  "GREETING",    "RIBBON",
        "RIBBONS", "TISSUE",    "TISSUES",    "DIARY",     "JOURNAL"}},
      {"textiles",
       {"CUSHION", "COVER", "TOWEL", "BLANKET", "THROW", "HOT WATER BOTTLE", "QUILT", "FELT",
        "KNITTED", "TEA COSY"}},
      {"kitchen & dining", {"COOKIE CUTTER", "COOKIE CUTTERS",
                            "DOILIES",       "CAKE",
                            "CAKES",         "CAKESTAND",
                            "BAKING",        "MUG",
                            "MUGS",          "CUP",
                            "CUPS",          "TEA",
                            "TEACUP",        "TEAPOT",
                            "COFFEE",        "PLATE",
                            "PLATES",        "BOWL",
                            "BOWLS",         "JAR",
                            "JARS",          "LUNCH",
                            "NAPKIN",        "NAPKINS",
                            "TRAY",          "SPOON",
                            "SPOONS",        "KITCHEN",
                            "RECIPE",        "JUG",
                            "CUTLERY",       "DISH",
                            "PANTRY",        "COASTER",
                            "COASTERS",      "CHOCOLATE",
                            "JAM",           "PICNIC",
                            "DINNER",        "BISCUIT",
                            "SUGAR",         "TUMBLER",
                            "BEAKER",        "STRAWS",
                            "CASES",         "DOILY",
                            "JELLY",         "MOULD",
                            "TOAST",         "BREAD",
                            "EGG CUP",       "BOTTLE",
                            "APRON",         "OVEN",
                            "CHOPSTICKS",    "MILK"}},
      {"garden & outdoor",
       {"GARDENERS", "GARDEN", "PLANT", "PLANTER", "FLOWER POT", "WATERING", "BIRD HOUSE",
        "BIRDHOUSE", "BIRD FEEDER", "FEEDER", "SEED", "SEEDS", "HERB", "THERMOMETER", "PEG",
        "PEGS"}},
      {"storage",
       {"BOX", "BOXES", "TIN", "TINS", "BASKET", "BASKETS", "STORAGE", "DRAWER", "CABINET",
        "TRINKET", "CRATE", "HAMPER", "CASE", "CHEST"}},
      {"home decor",
       {"COAT RACK", "SLEIGH BELLS", "WICKER STAR", "SIGN",    "FRAME",   "CLOCK",  "MIRROR",
        "HOOK",      "HOOKS",        "DOORSTOP",    "DOORMAT", "HEART",   "HEARTS", "WREATH",
        "ORNAMENT",  "DECORATION",   "GARLAND",     "VASE",    "HANGING", "WALL",   "PHOTO",
        "PICTURE",   "MAGNET",       "MAGNETS",     "KNOB",    "HANGER",  "DOOR",   "TILE",
        "PLAQUE",    "CHALKBOARD",   "BLACKBOARD",  "ART",     "HOLDER",  "STAND",  "SHELF",
        "LETTER",    "LETTERS"}},
  };
  return *rules;
}

// Whether `words` holds the words of `keyword` consecutively.
bool Contains(const std::vector<std::string>& words, const char* keyword) {
  const std::vector<std::string> parts = absl::StrSplit(keyword, ' ');
  for (size_t i = 0; i + parts.size() <= words.size(); ++i) {
    bool all = true;
    for (size_t j = 0; j < parts.size() && all; ++j) all = words[i + j] == parts[j];
    if (all) return true;
  }
  return false;
}

}  // namespace

std::string CategoryOfDescription(absl::string_view description) {
  std::vector<std::string> words;
  std::string word;
  for (char c : description) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      word += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  for (const Rule& rule : Rules()) {
    for (const char* keyword : rule.keywords) {
      if (Contains(words, keyword)) return rule.category;
    }
  }
  return "other";
}

}  // namespace recsys::core
