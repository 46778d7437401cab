import { GlassdError } from "../core/errors.js";

/** Why the twin refused a tag operation. */
export type TwinTagErrorCode = "unknown_tag" | "not_writable" | "invalid_value";

/** A read or write the twin refused: an unknown tag, a tag without a lever, or a non-finite value. */
export class TwinTagError extends GlassdError {
  readonly tag: string;
  constructor(code: TwinTagErrorCode, tag: string, message: string) {
    super(message, { status: code === "unknown_tag" ? 404 : 400, code, details: { tag } });
    this.tag = tag;
  }
}
