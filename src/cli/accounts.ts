import { readFileSync } from "node:fs";
import { Auth, isRole, type Role } from "../api/auth/index.js";
import type { Config } from "../config/index.js";
import { GlassdError } from "../core/errors.js";
import { silentLogger } from "../core/logger.js";

/**
 * `glassd user …` and `glassd api-key …`: account administration on the data directory's users and API-key files.
 * A running daemon picks the edits up within about a second. Passwords are read from a file or stdin, never
 * from argv (argv is visible to every user in `ps`).
 */
export const ACCOUNTS_HELP = `Accounts (edit <data_dir>/users.json and api-keys.json; a running daemon sees changes within ~1 s):
  glassd user add NAME --role ROLE (--password-file F | --password-stdin)
  glassd user passwd NAME (--password-file F | --password-stdin)
  glassd user role NAME ROLE
  glassd user remove NAME
  glassd user list
  glassd api-key create NAME --role ROLE     prints the key once
  glassd api-key list
  glassd api-key revoke ID|NAME
ROLE: viewer | operator | engineer | admin`;

export interface AccountArgs {
  group: "user" | "api-key";
  words: string[];
  role?: string;
  passwordFile?: string;
  passwordStdin?: boolean;
}

/** Runs one account command; returns the exit code. Output goes to `out`, errors to `err`. */
export async function runAccountCommand(
  config: Config,
  a: AccountArgs,
  out: (s: string) => void,
  err: (s: string) => void,
): Promise<number> {
  const auth = new Auth({ config, logger: silentLogger });
  try {
    const info = await auth.init();
    if (info.generated_password_file)
      err(`created user admin; its generated password is in ${info.generated_password_file}`);
    const [verb, name, extra] = a.words;
    const need = (v: string | undefined, what: string): string => {
      if (!v) throw new GlassdError(`missing ${what}; see 'glassd --help'`, { status: 400, code: "usage" });
      return v;
    };
    const role = (r: string | undefined): Role => {
      if (!isRole(r))
        throw new GlassdError(`--role must be viewer, operator, engineer or admin (got ${JSON.stringify(r)})`, {
          status: 400,
          code: "usage",
        });
      return r;
    };
    const password = (): string => {
      if (a.passwordFile) return readFileSync(a.passwordFile, "utf8").replace(/\r?\n$/, "");
      if (a.passwordStdin) return readFileSync(0, "utf8").replace(/\r?\n$/, "");
      throw new GlassdError(
        "give the password with --password-file F or --password-stdin (never on the command line)",
        { status: 400, code: "usage" },
      );
    };
    switch (`${a.group} ${verb ?? ""}`) {
      case "user add":
        await auth.addUser(need(name, "NAME"), password(), role(a.role));
        out(`user ${name} added (${a.role})`);
        return 0;
      case "user passwd":
        await auth.setPassword(need(name, "NAME"), password());
        out(`password of ${name} changed`);
        return 0;
      case "user role":
        await auth.setRole(need(name, "NAME"), role(extra));
        out(`${name} is now ${extra}`);
        return 0;
      case "user remove":
        await auth.removeUser(need(name, "NAME"));
        out(`user ${name} removed`);
        return 0;
      case "user list":
        for (const u of await auth.listUsers()) out(`${u.username}\t${u.role}\t${u.created_at}`);
        return 0;
      case "api-key create": {
        const k = await auth.createApiKey(need(name, "NAME"), role(a.role));
        out(k.key);
        err(`API key ${k.id} "${k.name}" (${k.role}) created; the key above is shown only this once`);
        return 0;
      }
      case "api-key list":
        for (const k of await auth.listApiKeys()) out(`${k.id}\t${k.name}\t${k.role}\t${k.created_at}`);
        return 0;
      case "api-key revoke":
        await auth.revokeApiKey(need(name, "ID or NAME"));
        out(`API key ${name} revoked`);
        return 0;
      default:
        err(`unknown command "${a.group} ${verb ?? ""}".\n${ACCOUNTS_HELP}`);
        return 2;
    }
  } catch (e) {
    err(`glassd ${a.group}: ${(e as Error).message}`);
    return e instanceof GlassdError && e.code === "usage" ? 2 : 1;
  }
}
