// The pieces every page uses: links, titles, status and error messages, fields, copy buttons, dialogs, pagers.
import { Fragment, type ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { BASE, followLink } from './router';
import { formatTimestamp } from './format';

interface LinkProps {
  to: string;
  children: ComponentChildren;
  class?: string;
  'aria-current'?: 'page';
  'aria-label'?: string;
  title?: string;
}

export function Link({ to, children, ...rest }: LinkProps) {
  return (
    <a href={`${BASE}${to}`} onClick={(event) => followLink(event, to)} {...rest}>
      {children}
    </a>
  );
}

/** The page's heading; focused after each navigation (see app.tsx), and the tab's title. */
export function PageTitle({ children, title }: { children: ComponentChildren; title: string }) {
  useEffect(() => {
    document.title = `${title} · Users API Console`;
  }, [title]);
  return (
    <h1 tabIndex={-1} id="page-title">
      {children}
    </h1>
  );
}

export function Loading({ children }: { children: ComponentChildren }) {
  return (
    <p class="status loading" role="status">
      {children}
    </p>
  );
}

/** A message that something worked; announced to screen readers. */
export function Notice({ children }: { children: ComponentChildren }) {
  return (
    <p class="notice" role="status">
      {children}
    </p>
  );
}

export function ErrorMessage({ children, onRetry }: { children: ComponentChildren; onRetry?: () => void }) {
  return (
    <div class="error" role="alert">
      <p>{children}</p>
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}

export function Time({ value }: { value: string | null }) {
  return value ? <time dateTime={value}>{formatTimestamp(value)}</time> : <>—</>;
}

/** A URL or a code (`invalid_credentials`) that wraps where a reader expects it: after each slash or underscore and
 * before each dot (a <wbr> there); within a part only when that part alone is wider than the line (overflow-wrap). */
export function Breakable({ text }: { text: string }) {
  const parts = text.split(/(?<=[/_])(?![/_])|(?=\.)/);
  return (
    <>
      {parts.map((part, i) => (
        <Fragment key={i}>
          {i > 0 && <wbr />}
          {part}
        </Fragment>
      ))}
    </>
  );
}

interface FieldProps {
  id: string;
  label: string;
  errors?: string[];
  hint?: ComponentChildren;
  children: (describedBy: string | undefined, invalid: boolean) => ComponentChildren;
}

/** A label, the control, a hint and the field's errors beside it (aria-describedby ties them to the control). */
export function Field({ id, label, errors = [], hint, children }: FieldProps) {
  const described = [hint ? `${id}-hint` : '', errors.length ? `${id}-errors` : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div class={`field${errors.length ? ' invalid' : ''}`}>
      <label for={id}>{label}</label>
      {children(described, errors.length > 0)}
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {errors.length > 0 && (
        <ul class="field-errors" id={`${id}-errors`}>
          {errors.map((message) => (
            <li key={message}>{message}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

const COPIED = 'Copied.';
const COPIED_SHOWN_MS = 4000;

/** Copies `text`: the Clipboard API where the page may use it, else the selected text and execCommand. */
export function CopyButton({ text, label }: { text: string; label: string }) {
  const [result, setResult] = useState<string | null>(null);
  // "Copied." is news only for a moment: gone after a few seconds, or at the next click or key press.
  useEffect(() => {
    if (result !== COPIED) return;
    const clear = () => setResult(null);
    const timer = setTimeout(clear, COPIED_SHOWN_MS);
    document.addEventListener('pointerdown', clear, true);
    document.addEventListener('keydown', clear, true);
    return () => {
      clearTimeout(timer);
      document.removeEventListener('pointerdown', clear, true);
      document.removeEventListener('keydown', clear, true);
    };
  }, [result]);
  const copy = async () => {
    try {
      if (!navigator.clipboard) throw new Error('no clipboard');
      await navigator.clipboard.writeText(text);
      setResult(COPIED);
    } catch {
      const area = document.createElement('textarea');
      area.value = text;
      area.setAttribute('readonly', '');
      area.className = 'offscreen';
      document.body.append(area);
      area.select();
      const copied = document.execCommand('copy');
      area.remove();
      setResult(copied ? COPIED : 'Could not copy: select the text and press Ctrl+C (⌘C on a Mac).');
    }
  };
  return (
    <span class="copy">
      <button type="button" onClick={copy}>
        {label}
      </button>
      <span role="status" class="copy-result">
        {result}
      </span>
    </span>
  );
}

interface ConfirmProps {
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  busy?: boolean;
  error?: string | null;
  onConfirm: () => void;
  onCancel: () => void;
}

/** A modal dialog (the browser's own <dialog>: focus kept inside, Escape cancels); Cancel has the focus first. */
export function ConfirmDialog({ title, children, confirmLabel, busy = false, error = null, onConfirm, onCancel }: ConfirmProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const cancelRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    dialog.showModal();
    cancelRef.current?.focus();
    return () => dialog.close();
  }, []);
  return (
    <dialog
      ref={ref}
      aria-labelledby="confirm-title"
      onCancel={(event) => {
        event.preventDefault();
        if (!busy) onCancel();
      }}
    >
      <h2 id="confirm-title">{title}</h2>
      {children}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="actions">
        <button type="button" ref={cancelRef} onClick={onCancel} disabled={busy}>
          Cancel
        </button>
        <button type="button" class="danger" onClick={onConfirm} disabled={busy}>
          {busy ? 'Working…' : confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

/** Previous/next page buttons for the API's cursor links. */
export function Pager({ previous, next, onPage, label }: { previous: string | null; next: string | null; onPage: (link: string) => void; label: string }) {
  if (!previous && !next) return null;
  return (
    <nav class="pager" aria-label={label}>
      <button type="button" disabled={!previous} onClick={() => previous && onPage(previous)}>
        ← Previous page
      </button>
      <button type="button" disabled={!next} onClick={() => next && onPage(next)}>
        Next page →
      </button>
    </nav>
  );
}

/** A read-only secret-ish value (a user token) with a copy button. */
export function TokenOutput({ token, id }: { token: string; id: string }) {
  return (
    <div class="token">
      <label for={id}>User token</label>
      <textarea id={id} readOnly rows={3} value={token} spellcheck={false} onFocus={(event) => event.currentTarget.select()} />
      <CopyButton text={token} label="Copy token" />
    </div>
  );
}
