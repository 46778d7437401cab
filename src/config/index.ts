export { DEFAULT_TAGS } from "./default-tags.js";
export { type LoadOptions, type LoadResult, loadConfig, type Origin } from "./load.js";
export { type Config, ConfigSchema, type TagConfig, TagSchema } from "./schema.js";
export { defaultConfig, validateConfig } from "./validate.js";
