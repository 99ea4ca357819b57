import { Link, PageTitle } from '../components';

export function NotFoundPage() {
  return (
    <>
      <PageTitle title="Page not found">Page not found</PageTitle>
      <p>
        The console has no page at this address. Go to the <Link to="/users">list of users</Link>.
      </p>
    </>
  );
}
