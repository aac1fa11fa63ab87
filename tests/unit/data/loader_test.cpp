#include <trainscope/data/data.h>
#include <trainscope/error.h>

#include <gtest/gtest.h>

#include <set>

namespace ts = trainscope;

namespace {

std::shared_ptr<ts::data::TensorDataset> numbered(int64_t n) {
  auto x = torch::arange(n, torch::kFloat32).unsqueeze(1);
  return std::make_shared<ts::data::TensorDataset>(x, torch::arange(n, torch::kInt64));
}

std::vector<int64_t> epoch_order(ts::data::DataLoader& loader, int64_t epoch,
                                 std::vector<int64_t>* sizes = nullptr) {
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

namespace {

std::vector<std::vector<int64_t>> epoch_batches(ts::data::DataLoader& loader, int64_t epoch) {
  std::vector<std::vector<int64_t>> out;
  loader.start_epoch(epoch);
  ts::data::Batch b;
  while (loader.next(b)) {
    auto y = b.y.contiguous();
    out.emplace_back(y.data_ptr<int64_t>(), y.data_ptr<int64_t>() + y.numel());
  }
  return out;
}

// Throws for one example, to check that worker errors reach the consumer.
class BrokenAt : public ts::data::Dataset {
 public:
  explicit BrokenAt(int64_t bad) : bad_(bad) {}
  int64_t size() const override { return 20; }
  ts::data::Batch get_batch(const torch::Tensor& indices) const override {
    if (indices.eq(bad_).any().item<bool>())
      throw ts::DataError("example " + std::to_string(bad_) + " is broken");
    return {indices.to(torch::kFloat32).unsqueeze(1), indices.clone()};
  }

 private:
  int64_t bad_;
};

}  // namespace

TEST(DataLoader, WorkersYieldTheSameBatchesInTheSameOrder) {
  ts::data::LoaderOptions serial{7, true, false, 5};
  ts::data::LoaderOptions threaded = serial;
  threaded.workers = 3;
  threaded.prefetch = 2;
  ts::data::DataLoader a(numbered(100), serial), b(numbered(100), threaded);
  for (int64_t epoch : {1, 2, 1}) EXPECT_EQ(epoch_batches(a, epoch), epoch_batches(b, epoch));
}

TEST(DataLoader, MidEpochRestoreContinuesExactly) {
  for (int64_t workers : {0, 2}) {
    ts::data::LoaderOptions o{8, true, false, 11};
    o.workers = workers;
    ts::data::DataLoader full(numbered(50), o);
    auto expected = epoch_batches(full, 3);

    ts::data::DataLoader first(numbered(50), o);
    first.start_epoch(3);
    ts::data::Batch b;
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(first.next(b));
    const ts::data::LoaderPosition saved = first.position();
    EXPECT_EQ(saved.epoch, 3);
    EXPECT_EQ(saved.batches, 4);
    EXPECT_EQ(saved.seed, 11u);

    ts::data::DataLoader resumed(numbered(50), o);  // a fresh process, as after a restart
    resumed.restore(saved);
    std::vector<std::vector<int64_t>> rest;
    while (resumed.next(b))
      rest.emplace_back(b.y.data_ptr<int64_t>(), b.y.data_ptr<int64_t>() + b.y.numel());
    EXPECT_EQ(rest, std::vector<std::vector<int64_t>>(expected.begin() + 4, expected.end()))
        << workers << " workers";
  }
}

TEST(DataLoader, RestoreRejectsAnotherSeedOrAPositionPastTheEnd) {
  ts::data::DataLoader loader(numbered(10), {3, true, false, 1});
  EXPECT_THROW(loader.restore({1, 0, 2}), ts::ConfigError);
  EXPECT_THROW(loader.restore({1, 5, 1}), ts::ConfigError);
  EXPECT_NO_THROW(loader.restore({1, 4, 1}));  // at the end: the epoch is over
  ts::data::Batch b;
  EXPECT_FALSE(loader.next(b));
}

TEST(DataLoader, ShardsAreEqualAndDisjoint) {
  // 10 examples on 3 ranks: 3 each, so the ranks' batches pair up; the one left out changes with
  // the epoch's permutation.
  std::set<int64_t> left_out;
  for (int64_t epoch = 1; epoch <= 6; ++epoch) {
    for (bool drop_last : {false, true}) {
      std::vector<int64_t> seen;
      std::vector<int64_t> sizes;
      for (int64_t rank = 0; rank < 3; ++rank) {
        ts::data::LoaderOptions o{drop_last ? 2 : 4, true, drop_last, 9};
        o.rank = rank;
        o.world_size = 3;
        o.workers = rank % 2;
        ts::data::DataLoader loader(numbered(10), o);
        auto order = epoch_order(loader, epoch);
        EXPECT_EQ(int64_t(order.size()), drop_last ? 2 : loader.shard_size());
        EXPECT_EQ(loader.shard_size(), 3);
        sizes.push_back(int64_t(order.size()));
        seen.insert(seen.end(), order.begin(), order.end());
      }
      std::sort(seen.begin(), seen.end());
      EXPECT_TRUE(std::adjacent_find(seen.begin(), seen.end()) == seen.end())
          << "a shard repeats an example";
      EXPECT_EQ(sizes, (std::vector<int64_t>(3, drop_last ? 2 : 3)));
      if (!drop_last) {
        ASSERT_EQ(seen.size(), 9u);
        for (int64_t i = 0; i < 10; ++i)
          if (!std::binary_search(seen.begin(), seen.end(), i)) left_out.insert(i);
      }
    }
  }
  EXPECT_GT(left_out.size(), 1u) << "not always the same example left out";
  ts::data::LoaderOptions bad{4, true, false, 0};
  bad.rank = 3;
  bad.world_size = 3;
  EXPECT_THROW(ts::data::DataLoader(numbered(10), bad), ts::ConfigError);
}

TEST(DataLoader, WorkerErrorsSurfaceAtTheirBatch) {
  ts::data::LoaderOptions o{5, false, false, 0};
  o.workers = 2;
  ts::data::DataLoader loader(std::make_shared<BrokenAt>(12), o);
  loader.start_epoch(1);
  ts::data::Batch b;
  EXPECT_TRUE(loader.next(b));
  EXPECT_TRUE(loader.next(b));
  try {
    loader.next(b);
    FAIL() << "the third batch holds example 12";
  } catch (const ts::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("example 12"), std::string::npos);
  }
}

TEST(DataLoader, StopsWorkersWhenDestroyedMidEpoch) {
  ts::data::LoaderOptions o{2, true, false, 0};
  o.workers = 4;
  for (int i = 0; i < 20; ++i) {
    ts::data::DataLoader loader(numbered(100), o);
    loader.start_epoch(1);
    ts::data::Batch b;
    ASSERT_TRUE(loader.next(b));
  }  // joins without hanging
  SUCCEED();
}

TEST(DataLoader, CountsTheTimeTheConsumerWaits) {
  ts::data::DataLoader loader(numbered(10), {5, false, false, 0});
  loader.start_epoch(1);
  ts::data::Batch b;
  while (loader.next(b)) {
  }
  EXPECT_GT(loader.wait_seconds(), 0.0);  // without workers, loading happens inside next()
  loader.reset_wait();
  EXPECT_EQ(loader.wait_seconds(), 0.0);
}
