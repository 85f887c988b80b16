/**
 * Article markdown, rendered with marked and sanitised with DOMPurify before it reaches the
 * DOM: lesson text is user input, so raw HTML in it never runs. Import this lazily (it pulls
 * marked and DOMPurify into the page's chunk, not the initial bundle).
 */
import DOMPurify from 'dompurify';
import { marked, type Token } from 'marked';
import { useMemo } from 'react';

/**
 * `headingOffset` pushes the text's headings down (1: `#` becomes <h2>), for a page whose own
 * title is already its one <h1>.
 */
export function renderMarkdown(source: string, headingOffset = 0): string {
  const walkTokens = headingOffset
    ? (token: Token) => {
        if (token.type === 'heading') token.depth = Math.min(6, token.depth + headingOffset);
      }
    : null;
  const html = marked.parse(source, { async: false, gfm: true, walkTokens });
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true }, FORBID_ATTR: ['style'] });
}

export default function Markdown({ source, className = '', headingOffset = 0 }: { source: string; className?: string; headingOffset?: number }) {
  const html = useMemo(() => renderMarkdown(source, headingOffset), [source, headingOffset]);
  return <div className={`prose dark:prose-invert ${className}`} dangerouslySetInnerHTML={{ __html: html }} />;
}
