// The console's frame: sign-in until there is a key, then the header, the navigation and the page for the route.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { Link, Notice } from './components';
import { navigate, takeNotice, useRoute } from './router';
import { session } from './session';
import { KeysPage } from './pages/keys';
import { NewUserPage } from './pages/new-user';
import { NotFoundPage } from './pages/not-found';
import { SignInPage } from './pages/sign-in';
import { UserPage } from './pages/user';
import { UsersPage } from './pages/users';
import { WebhookPage } from './pages/webhook';
import { WebhooksPage } from './pages/webhooks';

function useSession() {
  const [credentials, setCredentials] = useState(session.credentials);
  useEffect(() => session.subscribe(() => setCredentials(session.credentials())), []);
  return credentials;
}

const SECTIONS = [
  { to: '/users', label: 'Users', match: (path: string) => path.startsWith('/users') && path !== '/users/new' },
  { to: '/users/new', label: 'Create user', match: (path: string) => path === '/users/new' },
  { to: '/webhooks', label: 'Webhooks', match: (path: string) => path.startsWith('/webhooks') },
  { to: '/keys', label: 'Keys and export', match: (path: string) => path.startsWith('/keys') },
];

function page(path: string): ComponentChildren {
  const [section, id, ...rest] = path.split('/').filter(Boolean);
  if (rest.length > 0) return <NotFoundPage />;
  switch (section) {
    case 'users':
      if (id === 'new') return <NewUserPage />;
      return id === undefined ? <UsersPage /> : <UserPage key={id} id={id} />;
    case 'webhooks':
      return id === undefined ? <WebhooksPage /> : <WebhookPage key={id} id={id} />;
    case 'keys':
      return id === undefined ? <KeysPage /> : <NotFoundPage />;
    default:
      return <NotFoundPage />;
  }
}

export function App() {
  const credentials = useSession();
  const route = useRoute();
  const [notice, setNotice] = useState<string | null>(null);
  const main = useRef<HTMLElement>(null);
  const firstPath = useRef(true);

  useEffect(() => {
    if (route.path === '/') navigate('/users', { replace: true });
  }, [route.path]);

  // After a navigation, focus goes to the new page's heading (a screen reader reads where it is); after signing out,
  // to the sign-in form's first field.
  useEffect(() => {
    setNotice(takeNotice());
    if (firstPath.current) {
      firstPath.current = false;
      return;
    }
    const target = credentials === null ? main.current?.querySelector('input') : main.current?.querySelector('h1');
    target?.focus();
  }, [route.path, credentials === null]);

  if (!credentials) {
    return (
      <main id="main" ref={main} class="sign-in">
        <SignInPage />
      </main>
    );
  }
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <div class="bar">
          <span class="brand">Users API Console</span>
          <span class="who">
            Key <code>{credentials.keyId}</code>
          </span>
          <button type="button" class="sign-out" onClick={() => session.signOut()}>
            Sign out
          </button>
        </div>
        <nav aria-label="Sections">
          <ul>
            {SECTIONS.map((section) => (
              <li key={section.to}>
                <Link to={section.to} aria-current={section.match(route.path) ? 'page' : undefined}>
                  {section.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {notice && <Notice>{notice}</Notice>}
        {page(route.path)}
      </main>
    </>
  );
}
