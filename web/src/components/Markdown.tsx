/**
 * Article markdown, rendered with marked and sanitised with DOMPurify before it reaches the
 * DOM: lesson text is user input, so raw HTML in it never runs. Import this lazily (it pulls
 * marked and DOMPurify into the page's chunk, not the initial bundle).
 */
import DOMPurify from 'dompurify';
import { marked } from 'marked';
import { useMemo } from 'react';

export function renderMarkdown(source: string): string {
  const html = marked.parse(source, { async: false, gfm: true });
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true }, FORBID_ATTR: ['style'] });
}

export default function Markdown({ source, className = '' }: { source: string; className?: string }) {
  const html = useMemo(() => renderMarkdown(source), [source]);
  return <div className={`prose dark:prose-invert ${className}`} dangerouslySetInnerHTML={{ __html: html }} />;
}
