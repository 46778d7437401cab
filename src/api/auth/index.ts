export { type ApiKeyInfo, isApiKeyShaped } from "./api-keys.js";
export {
  Auth,
  type Authenticator,
  type AuthInitInfo,
  type AuthOptions,
  type LoginResult,
  type Principal,
  type UserInfo,
} from "./auth.js";
export { AuthError, type AuthFailure, ForbiddenError, TooManyAttemptsError, type WithHeaders } from "./errors.js";
export { type AuthEnv, accessGuard, loginHandler, peerAddress, requestCredential, requireRole } from "./middleware.js";
export { hashPassword, MIN_PASSWORD_LENGTH, verifyPassword } from "./password.js";
export { isRole, ROLES, type Role, roleAtLeast } from "./roles.js";
