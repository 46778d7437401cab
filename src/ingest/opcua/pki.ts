import { createHash, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import type { OPCUACertificateManager } from "node-opcua";
import { GlassdError } from "../../core/errors.js";

/*
 * glassd's OPC UA PKI folder (node-opcua-pki layout, shared by the client source and `glassd pki`):
 *
 *   <pki>/own/certs/glassd.pem        glassd's application certificate (self-signed on first start)
 *   <pki>/own/private/private_key.pem its private key (mode 0600, created by node-opcua on first start)
 *   <pki>/trusted/certs/*.pem         server certificates glassd trusts (only `glassd pki trust` puts them here)
 *   <pki>/rejected/*.pem              server certificates seen and refused, named "<CN>[<sha1 thumbprint>].pem"
 *   <pki>/issuers/…                   CA certificates and CRLs (for servers with CA-signed certificates)
 *
 * Unknown server certificates are never accepted automatically: node-opcua's certificate manager is built with
 * automaticallyAcceptUnknownCertificate false, so a first contact lands the server's certificate in rejected/ and
 * the connection fails until an operator runs `glassd pki trust <thumbprint>`.
 */

export const OWN_CERT_NAME = "glassd.pem";

export interface PkiPaths {
  root: string;
  ownCert: string;
  ownKey: string;
  trusted: string;
  rejected: string;
}

export function pkiPaths(root: string): PkiPaths {
  const r = resolve(root);
  return {
    root: r,
    ownCert: join(r, "own", "certs", OWN_CERT_NAME),
    ownKey: join(r, "own", "private", "private_key.pem"),
    trusted: join(r, "trusted", "certs"),
    rejected: join(r, "rejected"),
  };
}

/** Default application URI of glassd's client certificate (must match the certificate's SAN URI). */
export function defaultApplicationUri(): string {
  return `urn:${hostname()}:glassd:opcua-client`;
}

/** A certificate file in the PKI, described. */
export interface CertInfo {
  /** SHA-1 thumbprint of the DER, lower-case hex (node-opcua's fingerprint, also in rejected/ file names). */
  thumbprint: string;
  subject: string;
  /** CN of the subject. */
  common_name: string;
  application_uri: string | null;
  valid_from: string;
  valid_to: string;
  expired: boolean;
  file: string;
}

export class PkiError extends GlassdError {
  constructor(message: string, code = "pki_error") {
    super(message, { status: 400, code });
  }
}

/** DER bytes of the first certificate of a PEM or DER buffer. */
export function toDer(data: Buffer): Buffer {
  const text = data.toString("latin1");
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(text);
  if (m) return Buffer.from(m[1]!.replace(/\s+/g, ""), "base64");
  return data;
}

export function thumbprintOf(der: Buffer): string {
  return createHash("sha1").update(der).digest("hex");
}

/** Normalises a thumbprint as typed by an operator: "AB:CD:…", "abcd…" → "abcd…". */
export function normaliseThumbprint(s: string): string {
  return s.replace(/[:\s]/g, "").toLowerCase();
}

export function describeCert(file: string): CertInfo {
  const der = toDer(readFileSync(file));
  const x = new X509Certificate(der);
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(x.subject)?.[1] ?? "";
  const uri = /URI:([^,\s]+)/.exec(x.subjectAltName ?? "")?.[1] ?? null;
  return {
    thumbprint: thumbprintOf(der),
    subject: x.subject.replace(/\n/g, ", "),
    common_name: cn,
    application_uri: uri,
    valid_from: new Date(x.validFrom).toISOString(),
    valid_to: new Date(x.validTo).toISOString(),
    expired: Date.parse(x.validTo) < Date.now(),
    file,
  };
}

function certFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => /\.(pem|der|crt|cer)$/i.test(f))
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile());
}

/** Certificates in trusted/ and rejected/, each described (unreadable files are listed with their error). */
export function listCerts(root: string): { trusted: CertInfo[]; rejected: CertInfo[]; unreadable: string[] } {
  const p = pkiPaths(root);
  const unreadable: string[] = [];
  const read = (dir: string) =>
    certFiles(dir).flatMap((f) => {
      try {
        return [describeCert(f)];
      } catch (err) {
        unreadable.push(`${f}: ${(err as Error).message}`);
        return [];
      }
    });
  return { trusted: read(p.trusted), rejected: read(p.rejected), unreadable };
}

/**
 * Finds a certificate by thumbprint (full, or a unique prefix of at least 8 hex digits) in `where`.
 * @throws PkiError when there is none or more than one.
 */
export function findCert(root: string, thumbprint: string, where: "trusted" | "rejected"): CertInfo {
  const want = normaliseThumbprint(thumbprint);
  if (!/^[0-9a-f]{8,40}$/.test(want)) {
    throw new PkiError(
      `"${thumbprint}" is not a thumbprint (8 to 40 hex digits; see 'glassd pki list')`,
      "pki_bad_thumbprint",
    );
  }
  const list = listCerts(root)[where];
  const hits = list.filter((c) => c.thumbprint.startsWith(want));
  if (hits.length === 0) {
    throw new PkiError(
      `no certificate with thumbprint ${want} in ${where}/ of ${pkiPaths(root).root}; 'glassd pki list' shows what is there`,
      "pki_not_found",
    );
  }
  if (hits.length > 1) throw new PkiError(`thumbprint prefix ${want} is ambiguous: give more digits`, "pki_ambiguous");
  return hits[0]!;
}

/**
 * Opens the PKI with node-opcua's certificate manager (folders created on first use), and creates glassd's
 * self-signed application certificate when there is none. The caller disposes the manager.
 */
export async function openPki(
  root: string,
  o: { applicationUri?: string; createOwnCertificate?: boolean } = {},
): Promise<{ cm: OPCUACertificateManager; paths: PkiPaths; created: boolean }> {
  const { OPCUACertificateManager } = await import("node-opcua");
  const paths = pkiPaths(root);
  mkdirSync(paths.root, { recursive: true, mode: 0o700 });
  const cm = new OPCUACertificateManager({ rootFolder: paths.root, automaticallyAcceptUnknownCertificate: false });
  await cm.initialize();
  let created = false;
  if (o.createOwnCertificate !== false && !existsSync(paths.ownCert)) {
    const uri = o.applicationUri ?? defaultApplicationUri();
    await cm.createSelfSignedCertificate({
      applicationUri: uri,
      subject: `/CN=glassd@${hostname()}/O=glassd`,
      dns: [hostname(), "localhost"],
      startDate: new Date(Date.now() - 24 * 3600_000),
      validity: 3650,
      outputFile: paths.ownCert,
    });
    created = true;
  }
  return { cm, paths, created };
}

/** Trusts a certificate: from rejected/ by thumbprint, or from a PEM/DER file. Returns what was trusted. */
export async function trustCert(root: string, what: string): Promise<CertInfo> {
  let der: Buffer;
  let info: CertInfo;
  if (existsSync(what) && statSync(what).isFile()) {
    try {
      info = describeCert(what);
    } catch (err) {
      throw new PkiError(`${what} is not a certificate (PEM or DER): ${(err as Error).message}`, "pki_bad_file");
    }
    der = toDer(readFileSync(what));
  } else {
    info = findCert(root, what, "rejected");
    der = toDer(readFileSync(info.file));
  }
  const { cm } = await openPki(root, { createOwnCertificate: false });
  try {
    await cm.trustCertificate(der);
  } finally {
    await cm.dispose();
  }
  return info;
}

/** Moves a trusted certificate to rejected/. */
export async function rejectCert(root: string, thumbprint: string): Promise<CertInfo> {
  const info = findCert(root, thumbprint, "trusted");
  const { cm } = await openPki(root, { createOwnCertificate: false });
  try {
    await cm.rejectCertificate(toDer(readFileSync(info.file)));
  } finally {
    await cm.dispose();
  }
  return info;
}
