#include <gtest/gtest.h>

#include <cmath>

#include "ecnr/Field.h"

using namespace ecnr;

TEST(Field, IndexIsXFastestThenYZT) {
  Field f(Dims4{3, 4, 5, 2});
  f.at(2, 1, 3, 1) = 7.0f;
  EXPECT_EQ(f.index(2, 1, 3, 1), 2 + 3 * (1 + 4 * (3 + 5 * 1)));
  EXPECT_EQ(f.values[size_t(f.index(2, 1, 3, 1))], 7.0f);
}

TEST(Field, RefusesDimsThatOverflowByArithmetic) {
  EXPECT_THROW(validateDims(Dims4{1 << 30, 1 << 30, 1 << 30, 1 << 30}), Error);
  EXPECT_THROW(validateDims(Dims4{0, 1, 1, 1}), Error);
  EXPECT_NO_THROW(validateDims(Dims4{1 << 20, 1 << 20, 1 << 10, 1}));
}

TEST(Field, NaNIsRefusedWithItsPosition) {
  Field f(Dims4{4, 4, 4, 1});
  f.at(1, 2, 3, 0) = std::nanf("");
  try {
    checkFinite(f);
    FAIL() << "NaN accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x=1 y=2 z=3"), std::string::npos) << e.what();
  }
}
