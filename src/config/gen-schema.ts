/** Writes config/schema.json from the one schema (npm run gen:schema). A test checks the file is current. */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { configJsonSchema } from "./json-schema.js";

const out = fileURLToPath(new URL("../../config/schema.json", import.meta.url));
writeFileSync(out, configJsonSchema());
process.stdout.write(`wrote ${out}\n`);
