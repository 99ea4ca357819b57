// TypeBox schemas of the Users API: they validate requests, serialize responses and make the OpenAPI document.
import { Type, type Static, type TSchema } from 'typebox';
import { OrderingSchema, pageQuerySchema, pageSchema } from '../http/schemas.js';
import type { StringFormat } from '../http/validation.js';
import { COUNTRY_CODES, isEmail, isEndUserPhone, isSsn, toE164 } from './users.formats.js';

/** Largest external_metadata accepted, in bytes of its JSON encoding. */
export const EXTERNAL_METADATA_MAX_BYTES = 65_536;

/** Custom string formats used below; "" passes every format so that minLength reports "may not be blank". */
export const USER_FORMATS: Record<string, StringFormat> = {
  email: { validate: (v) => v === '' || isEmail(v), message: 'Enter a valid email address.' },
  phone: { validate: (v) => v === '' || toE164(v) !== undefined, message: 'Enter a valid phone number.' },
  ssn: { validate: (v) => v === '' || isSsn(v), message: 'Enter a valid Social Security number.' },
  'iso3166-alpha2': {
    validate: (v) => v === '' || COUNTRY_CODES.has(v),
    message: (value) => `"${value}" is not a valid choice.`,
  },
  'lender-phone': { validate: (v) => v === '' || isEndUserPhone(v), message: 'Enter a valid phone number.' },
};

type Described = { description: string };

function Nullable<T extends TSchema>(schema: T) {
  const { type, ...rest } = schema as unknown as { type: string };
  return Type.Unsafe<Static<T> | null>({ ...rest, type: [type, 'null'] });
}

const text = (maxLength: number, options: Described) => Nullable(Type.String({ maxLength, ...options }));
/** A string with a format; the format bounds the length unless maxLength is given. */
const formatted = (format: string, maxLength: number | undefined, options: Described) =>
  Nullable(Type.String({ format, minLength: 1, ...(maxLength === undefined ? {} : { maxLength }), ...options }));

const AddressFields = {
  city: text(100, { description: 'Name of the city, town, district, or similar regional entity.' }),
  line1: text(255, { description: 'Address-Line 1, usually street address or P.O. Box information.' }),
  line2: text(255, { description: 'Address-Line 2, usually the apartment or unit number.' }),
  state: text(100, { description: 'State, county, province, region, or equivalent.' }),
  country: formatted('iso3166-alpha2', undefined, { description: 'Two-letter country code (ISO 3166-1 alpha-2 format).' }),
  postal_code: text(20, { description: 'Zip code, or equivalent.' }),
};

const BirthDateFields = {
  year: Nullable(Type.Integer({ minimum: 1900, maximum: 9999, description: 'Birth year (1900 or later).' })),
  month: Nullable(Type.Integer({ minimum: 1, maximum: 12, description: 'Birth month (between 1 and 12).' })),
  day: Nullable(Type.Integer({ minimum: 1, maximum: 31, description: 'Birth day (between 1 and 31).' })),
};

const EndUserFields = {
  name: text(255, { description: 'Name of the lender or entity.' }),
  address: text(255, { description: 'Street address or P.O. Box information (include apartment or unit numbers).' }),
  city: text(100, { description: 'Name of the city, town, district, or similar regional entity.' }),
  state: text(100, { description: 'State, county, province, region, or equivalent.' }),
  zip: text(20, { description: 'Zip code, or equivalent.' }),
  phone: formatted('lender-phone', undefined, {
    description: 'Phone number of the lender or entity. Must be 10 or 11 digits (with or without hyphens).',
  }),
};

const partialObject = <P extends Record<string, TSchema>>(properties: P, description: string) =>
  Nullable(Type.Partial(Type.Object(properties, { description })));

/**
 * Body of POST /v2/users and PATCH /v2/users/{id}. Every field is optional; null clears it.
 * Unknown and read-only fields are ignored.
 */
export const UserInputSchema = Type.Partial(
  Type.Object(
    {
      first_name: text(150, { description: "Pre-fill Link's login screen with this first name." }),
      last_name: text(150, { description: "Pre-fill Link's login screen with this last name." }),
      email: formatted('email', 254, {
        description: "Pre-fill Link's login screen with this email. Invalid email addresses fail the request.",
      }),
      phone_number: formatted('phone', 64, {
        description:
          "Pre-fill Link's login screen with this phone number. E.164 recommended; numbers without a country " +
          'code are read as US numbers. Stored and returned in E.164. Invalid phone numbers fail the request.',
      }),
      ssn: formatted('ssn', undefined, { description: 'Social Security number: nine digits, hyphens allowed.' }),
      address: partialObject(AddressFields, 'Address of the user. On update, keys merge into the stored address.'),
      birth_date: partialObject(
        BirthDateFields,
        'Date of birth of the user. On update, keys merge; when all three are set they must form a real past date.',
      ),
      external_metadata: Type.Unknown({
        description: `Any valid JSON, at most ${EXTERNAL_METADATA_MAX_BYTES} bytes when encoded. Replaced whole on update.`,
      }),
      open_banking: partialObject(
        {
          end_user: partialObject(
            EndUserFields,
            'Contains details about the person or entity making the lending decision.',
          ),
        },
        'Can be optionally included when ordering banking verifications. Stored, not returned on the user object.',
      ),
      external_id: text(100, { description: 'Any string. Maximum 100 characters.' }),
    },
    { description: 'User fields. All are optional; on update, null clears a field.' },
  ),
);
export type UserInput = Static<typeof UserInputSchema>;

const nullableOut = (schema: TSchema) => Nullable(schema);

export const UserSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid', description: 'Unique ID of the user (UUIDv7).' }),
    created_at: Type.String({
      format: 'date-time',
      description: 'Timestamp (ISO 8601, UTC, microseconds) when the user object was created.',
    }),
    items_connected: Type.Array(Type.String(), {
      description: 'Items the user has connected through Link. Typically employers or payroll platforms.',
    }),
    employers_connected: Type.Array(Type.String(), {
      description: 'Individual employers associated with the connected Items.',
    }),
    external_metadata: Type.Unknown({ description: 'Free-text field: any valid JSON, such as a string or object.' }),
    external_id: nullableOut(Type.String({ description: 'Free-text field of 100 characters or less.' })),
    first_name: nullableOut(Type.String({ description: 'First name of the user.' })),
    last_name: nullableOut(Type.String({ description: 'Last name of the user.' })),
    email: nullableOut(Type.String({ description: 'Email of the user.' })),
    phone_number: nullableOut(Type.String({ description: 'Phone number of the user. E.164 international format.' })),
    ssn: nullableOut(Type.String({ description: 'Social Security number of the user.' })),
    address: Type.Object(
      {
        city: nullableOut(Type.String()),
        line1: nullableOut(Type.String()),
        line2: nullableOut(Type.String()),
        state: nullableOut(Type.String()),
        country: nullableOut(Type.String()),
        postal_code: nullableOut(Type.String()),
      },
      { description: 'Address of the user.' },
    ),
    birth_date: Type.Object(
      {
        year: nullableOut(Type.Integer()),
        month: nullableOut(Type.Integer()),
        day: nullableOut(Type.Integer()),
      },
      { description: 'Date of birth of the user.' },
    ),
  },
  { $id: 'User', additionalProperties: false },
);
export type User = Static<typeof UserSchema>;

export const CreateUserResponseSchema = Type.Object({
  user_token: Type.String({ description: 'Token associated with the created user (JWT, valid one hour).' }),
  id: Type.String({ format: 'uuid', description: 'Unique ID of the user.' }),
});

export const UserIdParamsSchema = Type.Object({
  id: Type.String({ format: 'uuid', description: 'ID of the user object.' }),
});

const ExternalIdFilterSchema = Type.String({ description: 'Filter users by `external_id`. Exact matches only.' });

export const ListUsersQuerySchema = pageQuerySchema('user objects', { external_id: ExternalIdFilterSchema });

/** The list's filter and ordering; no paging, since the export is the whole walk. */
export const ExportUsersQuerySchema = Type.Partial(Type.Object({ external_id: ExternalIdFilterSchema, ordering: OrderingSchema }));
export type ExportUsersQuery = Static<typeof ExportUsersQuerySchema>;

export const ListUsersResponseSchema = pageSchema('User');
