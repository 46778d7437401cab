import { test } from "uvu";
import * as assert from "uvu/assert";
import type { DefectClass, InspectionEvent } from "../src/core/types.js";
import { InspectionWindow } from "../src/pipeline/inspection-window.js";

const ev = (item_id: number, ts: number, classes: DefectClass[] = []): InspectionEvent => ({
  item_id,
  ts,
  ok: classes.length === 0,
  defects: classes.map((c) => ({ class: c, size_mm: 1, x: 0.5, y: 0.5, severity: "minor" })),
});

test("counts items, defective items and defects per class inside the window", () => {
  const w = new InspectionWindow(60_000);
  w.add(ev(1, 0, ["bubble"]));
  w.add(ev(2, 10_000));
  w.add(ev(3, 20_000, ["crack", "bubble"]));
  w.add(ev(4, 30_000));
  const s = w.summary(30_000);
  assert.is(s.items_inspected, 4);
  assert.is(s.defective_items, 2);
  assert.is(s.defect_rate, 0.5);
  assert.is(s.quality_score, 0.5);
  assert.is(s.defects_per_class.bubble, 2);
  assert.is(s.defects_per_class.crack, 1);
  assert.is(s.defects_per_class.stone, 0);
  assert.is(s.last_item_ts, 30_000);
});

test("items leave the window with their counts (running counters agree with a recount)", () => {
  const w = new InspectionWindow(60_000);
  w.add(ev(1, 0, ["bubble"]));
  w.add(ev(2, 10_000, ["stain"]));
  w.add(ev(3, 70_000));
  const s = w.summary(70_000); // window (10 s, 70 s]: items 2 and 3
  assert.is(s.items_inspected, 2);
  assert.is(s.defective_items, 1);
  assert.is(s.defects_per_class.bubble, 0);
  assert.is(s.defects_per_class.stain, 1);
  const empty = w.summary(1_000_000);
  assert.is(empty.items_inspected, 0);
  assert.is(empty.defect_rate, null);
  assert.is(empty.defective_items, 0);
});

test("a long run stays bounded and exact after compaction", () => {
  const w = new InspectionWindow(3_600_000);
  const classes: DefectClass[] = ["crack", "bubble", "chip"];
  let expectedDefective = 0;
  for (let i = 0; i < 50_000; i++) {
    const bad = i % 7 === 0;
    w.add(ev(i, i * 100, bad ? [classes[i % 3] as DefectClass] : []));
  }
  // The last hour holds items with ts >= 5_000_000 - 3_600_000 = 1_400_000, i.e. i >= 14_000.
  for (let i = 14_000; i < 50_000; i++) if (i % 7 === 0) expectedDefective++;
  const s = w.summary(4_999_900 + 100);
  assert.is(s.items_inspected, 50_000 - 14_000);
  assert.is(s.defective_items, expectedDefective);
  assert.ok(w.size() <= 50_000);
});

test.run();
