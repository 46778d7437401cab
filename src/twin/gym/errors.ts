import { GlassdError } from "../../core/errors.js";

/**
 * Codes a gym server answers in an `error` message (PROTOCOL.md, "Errors"). The server stays up after every one of
 * them; the client may fix the request and send it again.
 */
export type GymErrorCode =
  | "bad_magic"
  | "frame_too_large"
  | "bad_header"
  | "bad_body"
  | "unknown_type"
  | "bad_request"
  | "bad_option"
  | "not_reset"
  | "bad_action_shape"
  | "bad_action_value"
  | "action_out_of_range"
  | "internal_error";

/** A request the gym refused: the message names the field and what would be accepted. */
export class GymError extends GlassdError {
  declare readonly code: GymErrorCode;
  constructor(code: GymErrorCode, message: string, details?: unknown) {
    super(message, { status: 400, code, details });
  }
}
