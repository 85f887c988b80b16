import { Link } from 'react-router';
import { PageTitle } from '../components/ui';

export default function NotFoundPage() {
  return (
    <div>
      <PageTitle>Page not found</PageTitle>
      <p className="mb-4">There is nothing at this address.</p>
      <Link to="/courses" className="font-medium text-brand-600 underline dark:text-brand-50">
        Browse the catalog
      </Link>
    </div>
  );
}
