/**
 * The principal a verified TLS client certificate names: the name a remote program (a portal, a
 * workflow engine) is known by when it connects with mutual TLS. Preference follows what such
 * programs are issued today: a SPIFFE-style `URI:` subject alternative name, else a `DNS:` one, else
 * the subject's common name.
 *
 * Only call this for a certificate the TLS layer has verified against the configured CA: nothing
 * here checks signatures, it only reads the names out of Node's rendering of the certificate.
 */
import type { PeerCertificate } from 'node:tls';

const MAX_PRINCIPAL_LENGTH = 256;

// Control characters, plus the invisible format characters (bidi overrides, zero-width marks) and
// line separators that would let two different names look alike in the logs and the audit trail.
const UNSAFE_CHARACTER = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

// URI and DNS names are IA5String, i.e. ASCII. Node renders other bytes as Latin-1 escapes; a name
// holding them is malformed and would only ever match by accident.
const NOT_PRINTABLE_ASCII = /[^\x20-\x7e]/;

interface GeneralName {
  /** As Node prints it: `DNS`, `URI`, `IP Address`, `email`, `DirName`, `othername`, ... */
  type: string;
  value: string;
}

/**
 * The principal name of a verified client certificate (`tls.TLSSocket#getPeerCertificate()`): its
 * first `URI:` subject alternative name, else its first `DNS:` one, else its subject CN.
 * Undefined when it has none of these, or when the name chosen is empty, longer than 256
 * characters, contains control or invisible characters, or when the certificate is ambiguous
 * (an unparsable subjectaltname, several CNs). The next kind of name is never tried instead of a
 * chosen one that is refused: which name counts must not depend on which names are well formed.
 */
export function principalNameOfCertificate(cert: PeerCertificate): string | undefined {
  // getPeerCertificate() returns {} when the peer sent no certificate, hence the optional reads.
  const subjectAltName: unknown = cert.subjectaltname;
  if (typeof subjectAltName === 'string' && subjectAltName !== '') {
    const names = parseSubjectAltName(subjectAltName);
    if (names === undefined) return undefined;
    const chosen = names.find((n) => n.type === 'URI') ?? names.find((n) => n.type === 'DNS');
    if (chosen !== undefined) return NOT_PRINTABLE_ASCII.test(chosen.value) ? undefined : acceptable(chosen.value);
  }
  // Node gives an array when the subject has the attribute more than once; which one is meant is
  // anybody's guess, so none is.
  const commonName: unknown = (cert.subject as unknown as Record<string, unknown> | undefined)?.CN;
  return typeof commonName === 'string' ? acceptable(commonName) : undefined;
}

function acceptable(name: string): string | undefined {
  if (name === '' || name.length > MAX_PRINCIPAL_LENGTH || UNSAFE_CHARACTER.test(name)) return undefined;
  return name;
}

/**
 * Splits Node's subjectaltname string (`DNS:a.example, URI:spiffe://x/y, IP Address:127.0.0.1`).
 * Node writes a value as-is only when it holds no comma, quote, backslash, apostrophe or control
 * character; any other value is written as a JSON string after the type (`URI:"spiffe://a\u002cb"`),
 * with commas escaped too. So an unquoted value ends at the first comma, a quoted one at its
 * closing quote, and entries are joined by ", ". Anything else is not Node's format: undefined.
 */
function parseSubjectAltName(text: string): GeneralName[] | undefined {
  const names: GeneralName[] = [];
  let at = 0;
  for (;;) {
    const colon = text.indexOf(':', at);
    if (colon < 0) return undefined;
    const type = text.slice(at, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      end = endOfJsonString(text, colon + 1);
      if (end < 0) return undefined;
      try {
        value = JSON.parse(text.slice(colon + 1, end)) as string;
      } catch {
        return undefined;
      }
    } else {
      end = text.indexOf(',', colon + 1);
      if (end < 0) end = text.length;
      value = text.slice(colon + 1, end);
    }
    names.push({ type, value });
    if (end === text.length) return names;
    if (!text.startsWith(', ', end)) return undefined;
    at = end + 2;
  }
}

/** The index just past the closing quote of the JSON string opening at `start`, or -1. */
function endOfJsonString(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i + 1;
  }
  return -1;
}
