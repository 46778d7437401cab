import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  decodeNpy,
  encodeNpy,
  int64From,
  int64ToNumbers,
  NpyError,
  NpyWriter,
  readNpy,
  readNpyAs,
  writeNpy,
} from "../src/core/npy.js";

/*
 * Golden files: the bytes numpy 2.4 `np.save` wrote for these arrays (base64). The writer must produce the same
 * bytes, the reader must read numpy's files (including a big-endian one) and refuse what it cannot represent.
 */
const GOLDEN = {
  // np.array([[1.5, -2, nan], [0, 3.25, 1e30]], dtype='<f4')
  f32: "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAMA/AAAAwAAAwH8AAAAAAABQQMrySXE=",
  // np.array([1767225600000, -5, 2**53 - 1], dtype='<i8')
  i64: "k05VTVBZAQB2AHsnZGVzY3InOiAnPGk4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAqNp2mwEAAPv/////////////////HwA=",
  // np.array([1, 258, 65535], dtype='>u2')
  u16be:
    "k05VTVBZAQB2AHsnZGVzY3InOiAnPnUyJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAQEC//8=",
  // np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
  u8_3d:
    "k05VTVBZAQB2AHsnZGVzY3InOiAnfHUxJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMsIDQpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhc=",
  // np.asfortranarray(np.ones((2, 2)))
  f8_fortran:
    "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY4JywgJ2ZvcnRyYW5fb3JkZXInOiBUcnVlLCAnc2hhcGUnOiAoMiwgMiksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAADwPwAAAAAAAPA/AAAAAAAA8D8AAAAAAADwPw==",
  // np.array(7, dtype='<i4')  (0-d)
  i4_scalar:
    "k05VTVBZAQB2AHsnZGVzY3InOiAnPGk0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoHAAAA",
};
const golden = (k: keyof typeof GOLDEN) => Buffer.from(GOLDEN[k], "base64");

let dir = "";
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), "glassd-npy-"));
});
test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

test("the writer produces numpy's exact bytes (float32 2-D, int64, uint8 3-D, 0-d int32)", () => {
  const f32 = Float32Array.from([1.5, -2, Number.NaN, 0, 3.25, 1e30]);
  assert.ok(encodeNpy(f32, [2, 3]).equals(golden("f32")), "float32 [2, 3]");
  assert.ok(encodeNpy(int64From([1767225600000, -5, 2 ** 53 - 1])).equals(golden("i64")), "int64 [3]");
  const u8 = Uint8Array.from({ length: 24 }, (_, i) => i);
  assert.ok(encodeNpy(u8, [2, 3, 4]).equals(golden("u8_3d")), "uint8 [2, 3, 4]");
  assert.ok(encodeNpy(Int32Array.of(7), []).equals(golden("i4_scalar")), "int32 0-d");
});

test("the reader reads numpy's files, byte-swapping big-endian ones", () => {
  const a = decodeNpy(golden("f32"));
  assert.is(a.dtype, "float32");
  assert.equal(a.shape, [2, 3]);
  assert.equal(Array.from(a.data as Float32Array).slice(0, 2), [1.5, -2]);
  assert.ok(Number.isNaN((a.data as Float32Array)[2]!));
  const i = decodeNpy(golden("i64"));
  assert.is(i.dtype, "int64");
  assert.equal(Array.from(int64ToNumbers(i.data as BigInt64Array)), [1767225600000, -5, 2 ** 53 - 1]);
  const be = decodeNpy(golden("u16be"));
  assert.is(be.dtype, "uint16");
  assert.equal(Array.from(be.data as Uint16Array), [1, 258, 65535]);
  const s = decodeNpy(golden("i4_scalar"));
  assert.equal(s.shape, []);
  assert.equal(Array.from(s.data as Int32Array), [7]);
});

test("round trip of every dtype through a file, with shapes", () => {
  const cases = [
    { data: Float32Array.from([0.1, Number.NaN, -3e38, 7]), shape: [2, 2] },
    { data: Float64Array.from([Math.PI, Number.NEGATIVE_INFINITY, 0]), shape: [3] },
    { data: int64From([0, -1, 9_007_199_254_740_991, 1767225600123]), shape: [4, 1] },
    { data: Int32Array.from([-(2 ** 31), 2 ** 31 - 1]), shape: [2] },
    { data: Uint8Array.from([0, 255, 1, 2, 3, 4]), shape: [1, 2, 3] },
    { data: Uint16Array.from([0, 65535]), shape: [2] },
    { data: new Float32Array(0), shape: [0, 266] },
  ];
  for (const [k, c] of cases.entries()) {
    const p = join(dir, `rt${k}.npy`);
    writeNpy(p, c.data, c.shape);
    const bytes = readFileSync(p);
    assert.is((10 + bytes.readUInt16LE(8)) % 64, 0, "data starts at a multiple of 64");
    const back = readNpy(p);
    assert.equal(back.shape, c.shape);
    assert.is(back.data.constructor, c.data.constructor);
    assert.ok(Buffer.from(back.data.buffer).equals(Buffer.from(c.data.buffer)), `case ${k}: data differs`);
  }
});

test("NpyWriter streams rows and fixes the shape in the header on close; unclosed files read as 0 rows", () => {
  const p = join(dir, "stream.npy");
  const w = new NpyWriter(p, "float32", [3]);
  const rows: number[] = [];
  for (let r = 0; r < 50_000; r++) {
    const row = [r, r + 0.5, -r];
    rows.push(...row);
    w.append(Float32Array.from(row));
  }
  assert.is(decodeNpy(readFileSync(p)).shape[0], 0, "before close the header claims 0 rows");
  assert.equal(w.close(), [50_000, 3]);
  const a = readNpyAs(p, "float32", [-1, 3]);
  assert.equal(a.shape, [50_000, 3]);
  assert.ok(Buffer.from(a.data.buffer).equals(Buffer.from(Float32Array.from(rows).buffer)));

  const q = join(dir, "push.npy");
  const ts = new NpyWriter(q, "int64");
  for (let k = 0; k < 1000; k++) ts.push(1767225600000 + k * 1000);
  ts.close();
  const back = int64ToNumbers(readNpyAs(q, "int64", [1000]).data);
  assert.is(back[999], 1767225600000 + 999_000);
  assert.throws(() => ts.append(new BigInt64Array(1)), /closed/);
  const u = new NpyWriter(join(dir, "bad.npy"), "uint8", [4]);
  assert.throws(() => u.append(new Uint8Array(3)), /whole rows/);
  assert.throws(() => u.append(new Float32Array(4) as unknown as Uint8Array), /uint8/);
  u.close();
});

test("the reader refuses what it cannot represent, naming the file", () => {
  const p = join(dir, "fortran.npy");
  writeFileSync(p, golden("f8_fortran"));
  assert.throws(
    () => readNpy(p),
    (e: unknown) => e instanceof NpyError && /fortran\.npy.*Fortran/.test(e.message),
  );
  assert.throws(() => decodeNpy(Buffer.from("not a numpy file")), /bad magic/);
  const cut = golden("f32").subarray(0, 140);
  assert.throws(() => decodeNpy(cut), /truncated/);
  const obj = Buffer.from(golden("i64"));
  obj.write("|O", obj.indexOf("<i8"), "latin1");
  assert.throws(() => decodeNpy(obj), /unsupported dtype/);
  assert.throws(() => readNpyAs(join(dir, "rt0.npy"), "float64"), /dtype is float32, expected float64/);
  assert.throws(() => readNpyAs(join(dir, "rt0.npy"), "float32", [4]), /shape is \(2, 2\), expected \(4\)/);
  assert.throws(() => encodeNpy(new Float32Array(5), [2, 3]), /holds 6 elements/);
  assert.throws(() => int64From([1.5]), /safe integer/);
});

test.run();
