import { type ModbusTagConfig, type ModbusValueType, registerWidth } from "./config.js";

/*
 * Request planning and value decoding. Registers of one unit, table and poll period are read together in blocks
 * (one request per block, at most `maxRegisters`, bridging gaps of at most `maxGap` unmapped registers): fewer
 * round trips on a slow RS-485 line, and the values of one block share a timestamp.
 */

export interface BlockTag {
  tag: string;
  /** Offset of the first register inside the block. */
  index: number;
  type: ModbusValueType;
  littleWords: boolean;
  scale: number;
  offset: number;
}

export interface Block {
  unit: number;
  table: "holding" | "input";
  start: number;
  count: number;
  periodMs: number;
  tags: BlockTag[];
}

export function planBlocks(tags: readonly ModbusTagConfig[], maxRegisters: number, maxGap: number): Block[] {
  const groups = new Map<string, ModbusTagConfig[]>();
  for (const t of tags) {
    const k = `${t.unit_id}|${t.table}|${t.period_ms}`;
    const g = groups.get(k);
    if (g) g.push(t);
    else groups.set(k, [t]);
  }
  const blocks: Block[] = [];
  for (const g of groups.values()) {
    g.sort((a, b) => a.register - b.register);
    let cur: Block | undefined;
    for (const t of g) {
      const w = registerWidth(t.type);
      const end = t.register + w; // exclusive
      if (cur && t.register <= cur.start + cur.count + maxGap && end - cur.start <= maxRegisters) {
        cur.count = Math.max(cur.count, end - cur.start);
      } else {
        cur = { unit: t.unit_id, table: t.table, start: t.register, count: w, periodMs: t.period_ms, tags: [] };
        blocks.push(cur);
      }
      cur.tags.push({
        tag: t.tag,
        index: t.register - cur.start,
        type: t.type,
        littleWords: t.word_order === "little",
        scale: t.scale,
        offset: t.offset,
      });
    }
  }
  return blocks;
}

const scratch = Buffer.alloc(4);

/** The raw value of `t` in a block's register bytes (big-endian registers, as on the wire). */
export function rawValue(regs: Buffer, t: BlockTag): number {
  const o = t.index * 2;
  switch (t.type) {
    case "int16":
      return regs.readInt16BE(o);
    case "uint16":
      return regs.readUInt16BE(o);
    case "int32":
    case "uint32":
    case "float32": {
      let b: Buffer = regs;
      let at = o;
      if (t.littleWords) {
        // CD AB → AB CD
        scratch[0] = regs[o + 2]!;
        scratch[1] = regs[o + 3]!;
        scratch[2] = regs[o]!;
        scratch[3] = regs[o + 1]!;
        b = scratch;
        at = 0;
      }
      return t.type === "int32" ? b.readInt32BE(at) : t.type === "uint32" ? b.readUInt32BE(at) : b.readFloatBE(at);
    }
    default: {
      const never: never = t.type;
      throw new RangeError(`unknown Modbus value type ${String(never)}`);
    }
  }
}

/** Engineering value: raw × scale + offset (NaN/∞ from a float32 register pass through for validation to reject). */
export function engineeringValue(regs: Buffer, t: BlockTag): number {
  return rawValue(regs, t) * t.scale + t.offset;
}
