// A text classifier: an embedding and a GRU over token ids, on a corpus of short reviews
// (`--make-corpus FILE` writes one, as the test suite does). Sequences are padded to the longest;
// their lengths travel as a named input, and the model reads the GRU's state at each sequence's
// last real token.
#include "../common/example.h"

#include <fstream>
#include <map>
#include <random>
#include <sstream>

namespace ts = trainscope;

namespace {

// Reviews of 4 to 14 words: fillers and sentiment words, nearly all of the review's side, and
// one of its side at a random place.
void write_corpus(const std::string& file) {
  const std::vector<std::string> good = {"good", "great", "excellent", "love", "wonderful", "best"},
                                 bad = {"bad", "awful", "terrible", "hate", "worst", "boring"},
                                 filler = {"the", "movie",  "was",   "and",  "plot", "acting", "i",
                                           "it",  "really", "story", "this", "film", "very"};
  std::mt19937 rng(42);
  std::ofstream out(file);
  for (int i = 0; i < 1600; ++i) {
    const int label = i % 2;
    const int words = 4 + static_cast<int>(rng() % 11);
    out << label << '\t';
    const int sure = static_cast<int>(rng() % words);
    for (int w = 0; w < words; ++w) {
      const unsigned r = rng() % 20;
      const bool own_side = w == sure || (r >= 12 && r < 19);
      const auto& pool = own_side ? (label == 1 ? good : bad)
                         : r < 12 ? filler
                                  : (label == 1 ? bad : good);
      out << (w ? " " : "") << pool[rng() % pool.size()];
    }
    out << '\n';
  }
}

struct Corpus {
  torch::Tensor tokens, lengths, labels;  // [N, T] (0: padding), [N], [N]
  int64_t vocabulary = 0;
};

// Token ids by first appearance; id 0 is padding.
Corpus read_corpus(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw ts::DataError("corpus " + file + " cannot be read");
  std::map<std::string, int64_t> ids;
  std::vector<std::vector<int64_t>> docs;
  std::vector<int64_t> labels;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const auto tab = line.find('\t');
    if (tab == std::string::npos || (line[0] != '0' && line[0] != '1'))
      throw ts::DataError(file + ":" + std::to_string(line_no) + ": expected <0 or 1><TAB><text>");
    labels.push_back(line[0] - '0');
    std::istringstream words(line.substr(tab + 1));
    std::vector<int64_t> doc;
    for (std::string w; words >> w;) doc.push_back(ids.emplace(w, ids.size() + 1).first->second);
    docs.push_back(doc);
  }
  size_t longest = 1;
  for (const auto& d : docs) longest = std::max(longest, d.size());
  Corpus c;
  c.tokens = torch::zeros({int64_t(docs.size()), int64_t(longest)}, torch::kInt64);
  c.lengths = torch::zeros({int64_t(docs.size())}, torch::kInt64);
  for (size_t i = 0; i < docs.size(); ++i) {
    for (size_t j = 0; j < docs[i].size(); ++j) c.tokens[i][j] = docs[i][j];
    c.lengths[i] = int64_t(std::max<size_t>(1, docs[i].size()));
  }
  c.labels = torch::tensor(labels, torch::kInt64);
  c.vocabulary = int64_t(ids.size()) + 1;
  return c;
}

struct GruClassifierImpl : torch::nn::Module {
  explicit GruClassifierImpl(int64_t vocabulary)
      : embed(register_module(
            "embed",
            torch::nn::Embedding(torch::nn::EmbeddingOptions(vocabulary, 32).padding_idx(0)))),
        gru(register_module("gru",
                            torch::nn::GRU(torch::nn::GRUOptions(32, 32).batch_first(true)))),
        head(register_module("head", torch::nn::Linear(32, 2))) {}
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& lengths) {
    auto states = std::get<0>(gru(embed(tokens)));  // [N, T, 32]
    auto last = (lengths - 1).view({-1, 1, 1}).expand({-1, 1, states.size(2)});
    return head(states.gather(1, last).squeeze(1));
  }
  torch::nn::Embedding embed;
  torch::nn::GRU gru;
  torch::nn::Linear head;
};
TORCH_MODULE(GruClassifier);

}  // namespace

int main(int argc, char** argv) {
  const auto args = example::parse_args(argc, argv);
  if (!args.make_corpus.empty()) {
    write_corpus(args.make_corpus);
    return 0;
  }
  torch::manual_seed(0);
  Corpus corpus;
  try {
    corpus = read_corpus(args.corpus.empty() ? "corpus.tsv" : args.corpus);
  } catch (const ts::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  const int64_t n = corpus.labels.size(0), train_n = n * 7 / 10, val_n = n * 15 / 100;
  auto part = [&](int64_t from, int64_t to) {
    return std::make_shared<ts::data::TensorDataset>(
        corpus.tokens.slice(0, from, to), corpus.labels.slice(0, from, to),
        ts::TensorMap{{"lengths", corpus.lengths.slice(0, from, to)}});
  };
  ts::data::DataSplits data;
  data.train = part(0, train_n);
  data.val = part(train_n, train_n + val_n);
  data.test = part(train_n + val_n, n);
  data.num_classes = 2;
  data.class_names = {"negative", "positive"};
  data.input_shape = {corpus.tokens.size(1)};
  data.source = "corpus " + args.corpus;
  auto config = example::config(args, "text_classifier");
  return example::run(args, config, [&](ts::Session& session) {
    GruClassifier net(corpus.vocabulary);
    session.data(data).model(
        ts::Model(net.ptr(),
                  ts::Model::ForwardWithInputs(
                      [m = net.ptr()](const torch::Tensor& tokens, const ts::TensorMap& in) {
                        return m->forward(tokens, in.at("lengths"));
                      }),
                  "gru_classifier"));
  });
}
