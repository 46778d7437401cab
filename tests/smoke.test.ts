import { test } from "uvu";
import * as assert from "uvu/assert";
import { SimClock } from "../src/core/clock.js";

test("SimClock advances only when told", () => {
  const c = new SimClock(1000);
  c.advance(500);
  assert.is(c.now(), 1500);
  assert.throws(() => c.advance(-1), /must be >= 0/);
});

test.run();
