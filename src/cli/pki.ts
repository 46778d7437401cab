import { join } from "node:path";
import { GlassdError } from "../core/errors.js";

/**
 * `glassd pki …`: glassd's OPC UA PKI folder (default <data_dir>/pki, or source.opcua.pki_dir). Server certificates
 * are never trusted automatically: a first connection to an unknown server leaves its certificate in rejected/ and
 * the source reports "server certificate untrusted: run glassd pki trust <thumbprint>". A running daemon picks a
 * change up on its next connection attempt.
 */
export const PKI_HELP = `OPC UA certificates (<data_dir>/pki, or source.opcua.pki_dir; a running daemon sees changes on its next attempt):
  glassd pki list                       trusted and rejected server certificates with their thumbprints
  glassd pki show                       glassd's own application certificate (give it to the server to trust)
  glassd pki trust THUMBPRINT|FILE      trust a rejected certificate (unique thumbprint prefix of 8+ digits) or a PEM/DER file
  glassd pki reject THUMBPRINT          move a trusted certificate to rejected/`;

export interface PkiArgs {
  /** data_dir of the configuration. */
  dataDir: string;
  /** source.opcua.pki_dir when configured. */
  pkiDir?: string;
  /** Words after `pki`: verb and argument. */
  words: string[];
}

/** Runs one `glassd pki` command; returns the exit code. Output goes to `out`, errors to `err`. */
export async function runPkiCommand(a: PkiArgs, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const root = a.pkiDir ?? join(a.dataDir, "pki");
  const [verb, arg, extra] = a.words;
  try {
    // Loaded lazily: node-opcua is large and only this command and the OPC UA source need it.
    const pki = await import("../ingest/opcua/pki.js");
    const need = (what: string): string => {
      if (!arg) throw new GlassdError(`missing ${what}; see 'glassd --help'`, { status: 400, code: "usage" });
      if (extra !== undefined) throw new GlassdError(`unexpected argument "${extra}"`, { status: 400, code: "usage" });
      return arg;
    };
    const line = (c: { thumbprint: string; common_name: string; valid_to: string; expired: boolean }) =>
      `  ${c.thumbprint}  ${c.common_name || "(no CN)"}  valid to ${c.valid_to.slice(0, 10)}${c.expired ? " EXPIRED" : ""}`;
    switch (verb) {
      case "list": {
        if (arg !== undefined) throw new GlassdError(`unexpected argument "${arg}"`, { status: 400, code: "usage" });
        const l = pki.listCerts(root);
        out(`PKI ${pki.pkiPaths(root).root}`);
        out(`trusted (${l.trusted.length}):`);
        for (const c of l.trusted) out(line(c));
        out(
          `rejected (${l.rejected.length}):${l.rejected.length ? "  trust one with: glassd pki trust THUMBPRINT" : ""}`,
        );
        for (const c of l.rejected) out(line(c));
        for (const u of l.unreadable) err(`unreadable: ${u}`);
        return 0;
      }
      case "show": {
        if (arg !== undefined) throw new GlassdError(`unexpected argument "${arg}"`, { status: 400, code: "usage" });
        const { cm, paths, created } = await pki.openPki(root);
        await cm.dispose();
        const c = pki.describeCert(paths.ownCert);
        if (created) err(`created glassd's application certificate in ${paths.ownCert}`);
        out(`certificate     ${c.file}`);
        out(`thumbprint      ${c.thumbprint}`);
        out(`subject         ${c.subject}`);
        out(`application_uri ${c.application_uri ?? "(none)"}`);
        out(`valid           ${c.valid_from} … ${c.valid_to}${c.expired ? " EXPIRED" : ""}`);
        out("The OPC UA server must trust this certificate (copy it into the server's trusted certificates).");
        return 0;
      }
      case "trust": {
        const c = await pki.trustCert(root, need("THUMBPRINT or FILE"));
        out(`trusted ${c.thumbprint} (${c.common_name || c.subject})`);
        return 0;
      }
      case "reject": {
        const c = await pki.rejectCert(root, need("THUMBPRINT"));
        out(`rejected ${c.thumbprint} (${c.common_name || c.subject}); it is in rejected/ now`);
        return 0;
      }
      default:
        err(`glassd pki: ${verb ? `unknown command "${verb}"` : "a command is needed"}; valid:\n${PKI_HELP}`);
        return 2;
    }
  } catch (e) {
    err(`glassd pki: ${(e as Error).message}`);
    return e instanceof GlassdError && e.code === "usage" ? 2 : 1;
  }
}
