#include <trainscope/data/data.h>
#include <trainscope/error.h>

#include <gtest/gtest.h>

namespace ts = trainscope;

namespace {

std::shared_ptr<ts::data::TensorDataset> numbered(int64_t n) {
  auto x = torch::arange(n, torch::kFloat32).unsqueeze(1);
  return std::make_shared<ts::data::TensorDataset>(x, torch::arange(n, torch::kInt64));
}

std::vector<int64_t> epoch_order(ts::data::DataLoader& loader, int64_t epoch, std::vector<int64_t>* sizes = nullptr) {
  std::vector<int64_t> order;
  loader.start_epoch(epoch);
  ts::data::Batch b;
  while (loader.next(b)) {
    if (sizes) sizes->push_back(b.y.size(0));
    for (int64_t i = 0; i < b.y.size(0); ++i) order.push_back(b.y[i].item<int64_t>());
  }
  return order;
}

}  // namespace

TEST(DataLoader, EachEpochVisitsEveryExampleOnceInASeededOrder) {
  ts::data::DataLoader a(numbered(10), {3, true, false, 42});
  std::vector<int64_t> sizes;
  auto e1 = epoch_order(a, 1, &sizes);
  EXPECT_EQ(sizes, (std::vector<int64_t>{3, 3, 3, 1}));
  EXPECT_EQ(a.batches_per_epoch(), 4);
  auto sorted = e1;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));

  // Same (seed, epoch): same order, even from another loader and after other epochs.
  ts::data::DataLoader b(numbered(10), {3, true, false, 42});
  epoch_order(b, 5);
  EXPECT_EQ(epoch_order(b, 1), e1);
  // Another epoch or another seed: another order.
  EXPECT_NE(epoch_order(a, 2), e1);
  ts::data::DataLoader c(numbered(10), {3, true, false, 43});
  EXPECT_NE(epoch_order(c, 1), e1);
}

TEST(DataLoader, DropLastAndNoShuffle) {
  ts::data::DataLoader a(numbered(10), {4, false, true, 0});
  std::vector<int64_t> sizes;
  EXPECT_EQ(epoch_order(a, 1, &sizes), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4}));
  EXPECT_EQ(a.batches_per_epoch(), 2);
}

TEST(DataLoader, RejectsZeroBatchSize) {
  EXPECT_THROW(ts::data::DataLoader(numbered(3), {0, true, false, 0}), ts::ConfigError);
}

TEST(HoldoutSplit, DisjointCoveringSizedAndSeeded) {
  auto ds = numbered(1000);
  auto s = ts::data::holdout_split(ds, 0.1, 3);
  EXPECT_EQ(s.val->size(), 100);
  EXPECT_EQ(s.train->size(), 900);
  auto ids = [](const ts::data::Dataset& d) { return d.get_batch(torch::arange(d.size())).y; };
  auto all = torch::cat({ids(*s.train), ids(*s.val)});
  EXPECT_TRUE(torch::equal(std::get<0>(all.sort()), torch::arange(1000, torch::kInt64)));
  auto again = ts::data::holdout_split(ds, 0.1, 3);
  EXPECT_TRUE(torch::equal(ids(*again.val), ids(*s.val)));
  auto other = ts::data::holdout_split(ds, 0.1, 4);
  EXPECT_FALSE(torch::equal(ids(*other.val), ids(*s.val)));
  EXPECT_THROW(ts::data::holdout_split(ds, 1.0, 0), ts::ConfigError);
  EXPECT_THROW(ts::data::holdout_split(ds, -0.1, 0), ts::ConfigError);
}

TEST(TensorDataset, RejectsMismatchedCounts) {
  EXPECT_THROW(ts::data::TensorDataset(torch::zeros({3, 2}), torch::zeros({4})), ts::DataError);
}
