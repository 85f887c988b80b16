/**
 * The mail the backend sent during the run, read from the real SMTP sink's directory
 * (E2E_MAIL_DIR, maildir-like: `new/*.eml`, written by learnflow.mail.sink), which
 * tests/test_web_e2e.py starts and points the server at.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const MAIL_DIR = process.env.E2E_MAIL_DIR ?? '';

/** A message's text with quoted-printable soft breaks and escapes undone. */
function decoded(raw: string): string {
  return raw.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex: string) =>
    String.fromCharCode(parseInt(hex, 16)),
  );
}

/** Waits for a mail to `to` that contains a link to `path` and returns the link's path and
 * query (e.g. `/reset-password?token=…`), relative to the app. */
export async function linkMailedTo(to: string, path: string, timeoutMs = 20_000): Promise<string> {
  if (!MAIL_DIR) throw new Error('E2E_MAIL_DIR is not set: the harness starts no mail sink');
  const pattern = new RegExp(`https?://[^\\s"<>]+(${path.replace('/', '\\/')}\\?token=[A-Za-z0-9_-]+)`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let names: string[] = [];
    try {
      names = readdirSync(join(MAIL_DIR, 'new')).filter((n) => n.endsWith('.eml')).sort().reverse();
    } catch {
      // No mail yet: the directory appears with the first message.
    }
    for (const name of names) {
      const text = decoded(readFileSync(join(MAIL_DIR, 'new', name), 'latin1'));
      const recipients = /^X-Sink-Rcpt-To: (.*)$/m.exec(text)?.[1]?.toLowerCase() ?? '';
      const link = pattern.exec(text)?.[1];
      if (recipients.includes(to.toLowerCase()) && link) return link;
    }
    if (Date.now() > deadline) throw new Error(`no mail to ${to} with a ${path} link`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
