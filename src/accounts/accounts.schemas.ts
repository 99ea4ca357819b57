// The account object (a user's payroll connection) and the bodies of the routes that make and change one.
import { Type, type Static } from 'typebox';
import { pageQuerySchema } from '../http/schemas.js';

/** Why a connection failed: the real service's vocabulary, each with the message shown when none is given. */
export const CONNECTION_ERRORS = {
  account_disabled: 'The account is disabled on the payroll platform.',
  account_inaccessible: 'The account cannot be accessed right now.',
  auth_required: 'The payroll platform asks the user to sign in again.',
  expired_credentials: 'The credentials have expired; the user must set new ones on the payroll platform.',
  invalid_auth: 'The sign-in method is not valid for this account.',
  invalid_credentials: 'The username or password is wrong.',
  invalid_mfa: 'The multi-factor code is wrong.',
  login_cancelled_by_the_user: 'The user cancelled the sign-in.',
  mfa_cancelled_by_the_user: 'The user cancelled multi-factor authentication.',
  mfa_exhausted: 'Too many wrong multi-factor codes.',
  mfa_not_configured: 'Multi-factor authentication is required but not set up on the account.',
  mfa_timeout: 'The multi-factor code was not entered in time.',
  physical_mfa_unsupported: 'The account uses a hardware token, which is not supported.',
  platform_unavailable: 'The payroll platform is unavailable.',
  system_error: 'Something went wrong while connecting.',
  unsupported_auth_type: 'The sign-in method of the account is not supported.',
  unsupported_mfa_method: 'The multi-factor method of the account is not supported.',
} as const;
export type ConnectionErrorCode = keyof typeof CONNECTION_ERRORS;

/** One of `values`, with DRF's "is not a valid choice." for anything else. */
const choice = <T extends string>(values: readonly T[], description: string) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], description });
const choiceOrNull = <T extends string>(values: readonly T[], description: string) =>
  Type.Unsafe<T | null>({ type: ['string', 'null'], enum: [...values, null], description });

const timestamp = (description: string) => Type.String({ format: 'date-time', description });
const nullable = (schema: object) => Type.Unsafe<string | null>({ ...schema, type: ['string', 'null'] });

export const AccountSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid', description: 'Unique ID of the account.' }),
    user: Type.String({ format: 'uuid', description: 'ID of the user the account belongs to.' }),
    employers: Type.Array(Type.String(), { description: 'Employers associated with the account.' }),
    item: Type.String({ description: 'The Item (payroll platform or employer) the account connects to.' }),
    source: Type.String({ description: 'Where the data comes from: the item itself unless given.' }),
    created_at: timestamp('When the account was created.'),
    updated_at: timestamp('When the account last changed.'),
    scanned_at: nullable({ format: 'date-time', description: 'When the account last connected successfully; null until then.' }),
    connection: Type.Object(
      {
        status: choice(['connecting', 'connected', 'error'] as const, '`connecting` while an attempt runs, then `connected` or `error`.'),
        error_code: choiceOrNull(Object.keys(CONNECTION_ERRORS) as ConnectionErrorCode[], 'Why the connection failed, when status is `error`.'),
        error_message: nullable({ description: 'A human-readable explanation of error_code.' }),
        updated_at: timestamp('When the connection status last changed.'),
      },
      { description: 'The state of the payroll connection.', additionalProperties: false },
    ),
  },
  { $id: 'Account', additionalProperties: false },
);
export type Account = Static<typeof AccountSchema>;

export const AccountIdParamsSchema = Type.Object({
  id: Type.String({ format: 'uuid', description: 'ID of the account.' }),
});

const employers = Type.Array(Type.String({ minLength: 1, maxLength: 255 }), {
  maxItems: 20,
  description: 'Employers found behind the item (at most 20, each 255 characters or less).',
});

export const CreateAccountBodySchema = Type.Object(
  {
    item: Type.String({ minLength: 1, maxLength: 100, description: 'The Item the user is connecting.' }),
    source: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Defaults to the item.' })),
    employers: Type.Optional(employers),
  },
  { additionalProperties: true },
);
export type CreateAccountBody = Static<typeof CreateAccountBodySchema>;

export const ReportConnectionBodySchema = Type.Object(
  {
    connection: Type.Object({
      status: choice(['connected', 'error'] as const, 'The outcome of the attempt.'),
      error_code: Type.Optional(
        choiceOrNull(Object.keys(CONNECTION_ERRORS) as ConnectionErrorCode[], 'Required when status is `error`; must be empty otherwise.'),
      ),
      error_message: Type.Optional(nullable({ maxLength: 1000, description: 'Defaults to the message of error_code.' })),
    }),
    employers: Type.Optional(employers),
  },
  { additionalProperties: true },
);
export type ReportConnectionBody = Static<typeof ReportConnectionBodySchema>;

export const ListAccountsQuerySchema = pageQuerySchema('accounts', {
  user: Type.String({ description: 'Only the accounts of this user (ID). Exact matches only.' }),
  item: Type.String({ description: 'Only the accounts of this Item. Exact matches only.' }),
});

export const LinkUserSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    first_name: nullable({ description: 'First name of the user.' }),
    last_name: nullable({ description: 'Last name of the user.' }),
    email: nullable({ description: 'Email of the user.' }),
    phone_number: nullable({ description: 'Phone number of the user, E.164.' }),
  },
  { additionalProperties: false, description: "What Link's login screen is pre-filled with; nothing else of the user." },
);
