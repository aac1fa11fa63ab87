#include <trainscope/data/csv.h>
#include <trainscope/data/idx.h>
#include <trainscope/data/spec.h>
#include <trainscope/error.h>

#include <sstream>

namespace trainscope::data {

DataSpec parse_data_spec(const std::string& spec) {
  DataSpec out;
  auto fail = [&](const std::string& why) {
    return ConfigError("data set '" + spec + "': " + why +
                       "; expected fashion-mnist, idx:DIR, folder:DIR or csv:FILE,target=COLUMN");
  };
  if (spec == "fashion-mnist") {
    out.kind = spec;
    return out;
  }
  const auto colon = spec.find(':');
  if (colon == std::string::npos) throw fail("unknown data set");
  out.kind = spec.substr(0, colon);
  std::string rest = spec.substr(colon + 1);
  if (out.kind != "idx" && out.kind != "folder" && out.kind != "csv")
    throw fail("unknown kind '" + out.kind + "'");
  if (out.kind != "csv") {
    if (rest.empty()) throw fail("missing directory after '" + out.kind + ":'");
    out.path = rest;
    return out;
  }
  std::stringstream ss(rest);
  std::string part;
  bool first = true;
  while (std::getline(ss, part, ',')) {
    if (first) {
      if (part.empty()) throw fail("missing file after 'csv:'");
      out.path = part;
      first = false;
      continue;
    }
    const auto eq = part.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == part.size())
      throw fail("option '" + part + "' is not key=value");
    const std::string key = part.substr(0, eq);
    if (key != "target" && key != "test")
      throw fail("unknown option '" + key + "' (known: target, test)");
    out.params[key].push_back(part.substr(eq + 1));
  }
  if (out.path.empty()) throw fail("missing file after 'csv:'");
  if (out.params.count("target") == 0) throw fail("no target column");
  if (out.params.count("test") && out.params.at("test").size() > 1)
    throw fail("more than one test file");
  return out;
}

DataSplits load_data(const DataOptions& o) {
  const DataSpec spec = parse_data_spec(o.spec);
  if (spec.kind == "fashion-mnist" || spec.kind == "idx") {
    IdxOptions io;
    io.dir = spec.kind == "idx" ? spec.path : o.fashion_mnist_dir;
    io.val_fraction = o.val_fraction;
    io.split_seed = o.split_seed;
    io.limit = o.limit;
    io.test_limit = o.test_limit;
    io.classes = o.classes;
    io.mean = o.mean;
    io.std = o.std;
    DataSplits d = spec.kind == "idx" ? load_idx_dir(io) : fashion_mnist(io);
    d.source = spec.kind == "idx" ? "idx:" + spec.path.string() : "fashion-mnist";
    return d;
  }
  if (!o.classes.empty())
    throw ConfigError("data.classes selects classes of IDX data (fashion-mnist, idx:DIR); for " +
                      o.spec + " keep only the classes' sub-folders or rows instead");
  if (spec.kind == "folder") {
    ImageFolderOptions fo;
    fo.dir = spec.path;
    fo.val_fraction = o.val_fraction;
    fo.split_seed = o.split_seed;
    fo.limit = o.limit;
    fo.on_bad_image = o.on_bad_image;
    fo.mean = o.mean;
    fo.std = o.std;
    return load_image_folder(fo);
  }
  CsvOptions co;
  co.file = spec.path;
  co.targets = spec.params.at("target");
  if (auto it = spec.params.find("test"); it != spec.params.end())
    co.test_file = it->second.front();
  co.classification = o.classification;
  co.multilabel = o.multilabel;
  co.val_fraction = o.val_fraction;
  co.split_seed = o.split_seed;
  co.limit = o.limit;
  return load_csv(co);
}

}  // namespace trainscope::data
