import { Link } from 'react-router';
import { PageTitle } from '../components/ui';

/** Shown in place of a page the signed-in user's role may not see (not a redirect). */
export default function NotAllowedPage() {
  return (
    <div>
      <PageTitle>Not allowed</PageTitle>
      <p className="mb-4">Your account's role does not give access to this page.</p>
      <Link to="/courses" className="font-medium text-brand-600 underline dark:text-brand-50">
        Back to the catalog
      </Link>
    </div>
  );
}
