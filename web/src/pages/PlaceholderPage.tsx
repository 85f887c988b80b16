import { PageTitle } from '../components/ui';

/** Stands in for a phase-2 page. */
export default function PlaceholderPage({ title }: { title: string }) {
  return (
    <div>
      <PageTitle>{title}</PageTitle>
      <p className="text-slate-600 dark:text-slate-400">Coming soon.</p>
    </div>
  );
}
