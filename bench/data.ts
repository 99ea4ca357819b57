// Realistic, deterministic POST /v2/users bodies with PII for seeding and for the create scenario.
// Every body passes the service's validation (real US phone numbers, nine-digit SSNs, past birth dates).

const FIRST_NAMES = [
  'Sarah', 'James', 'Maria', 'Robert', 'Linda', 'Michael', 'Patricia', 'David', 'Jennifer', 'William', 'Elizabeth',
  'Richard', 'Barbara', 'Joseph', 'Susan', 'Thomas', 'Jessica', 'Carlos', 'Karen', 'Daniel', 'Nancy', 'Matthew',
  'Lisa', 'Anthony', 'Betty', 'Mark', 'Sandra', 'Donald', 'Ashley', 'Steven', 'Kimberly', 'Andrew', 'Emily', 'Kevin',
  'Donna', 'Brian', 'Michelle', 'George', 'Carol', 'Timothy', 'Amanda', 'Ronald', 'Melissa', 'Jason', 'Deborah',
  'Aisha', 'Wei', 'Priya', 'José', 'Zoë', 'Nguyen', 'Fatima', 'Olumide', 'Siobhán', 'Mateo', 'Yuki',
];
const LAST_NAMES = [
  'Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez', 'Martinez', 'Hernandez',
  'Lopez', 'Gonzalez', 'Wilson', 'Anderson', 'Thomas', 'Taylor', 'Moore', 'Jackson', 'Martin', 'Lee', 'Perez',
  'Thompson', 'White', 'Harris', 'Sanchez', 'Clark', 'Ramirez', 'Lewis', 'Robinson', 'Walker', 'Young', 'Allen',
  'King', 'Wright', 'Scott', 'Torres', 'Nguyen', 'Hill', 'Flores', 'Green', "O'Brien", 'Adeyemi', 'Kowalski', 'Chen',
];
const EMAIL_DOMAINS = ['gmail.com', 'yahoo.com', 'outlook.com', 'icloud.com', 'proton.me', 'example.org', 'fastmail.com'];
const STREETS = ['Main', 'Oak', 'Pine', 'Maple', 'Cedar', 'Elm', 'Washington', 'Lake', 'Hill', 'Park', 'Sunset', 'Ridge'];
const STREET_KINDS = ['St', 'Ave', 'Blvd', 'Rd', 'Ln', 'Dr', 'Ct', 'Way'];
/** [city, state, postal code prefix, area code] */
const PLACES: ReadonlyArray<readonly [string, string, string, number]> = [
  ['New York', 'NY', '100', 212], ['Los Angeles', 'CA', '900', 213], ['Chicago', 'IL', '606', 312],
  ['San Francisco', 'CA', '941', 415], ['Boston', 'MA', '021', 617], ['Las Vegas', 'NV', '891', 702],
  ['Houston', 'TX', '770', 713], ['Miami', 'FL', '331', 305], ['Atlanta', 'GA', '303', 404],
  ['Seattle', 'WA', '981', 206], ['Denver', 'CO', '802', 303], ['Austin', 'TX', '787', 512],
  ['Nashville', 'TN', '372', 615], ['Salt Lake City', 'UT', '841', 801], ['Raleigh', 'NC', '276', 919],
  ['Portland', 'OR', '972', 971],
];
const SOURCES = ['web-signup', 'partner-api', 'mobile-app', 'branch', 'call-center'];
const PRODUCTS = ['personal-loan', 'credit-line', 'ewa', 'auto-refi', 'mortgage-preapproval'];

/** mulberry32: a small, fast, seedable PRNG so runs seed identical data. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface UserBody {
  first_name: string;
  last_name: string;
  email: string;
  phone_number: string;
  ssn: string;
  address: { line1: string; line2: string | null; city: string; state: string; postal_code: string; country: string };
  birth_date: { year: number; month: number; day: number };
  external_id?: string;
  external_metadata: { source: string; product: string; applicant_ref: number; consent: boolean };
}

const pick = <T>(random: () => number, list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
const digits = (random: () => number, n: number) => String(Math.floor(random() * 10 ** n)).padStart(n, '0');

/**
 * A generator of user bodies. `externalIdPool` distinct external ids are shared by the users
 * (so a filter by external_id matches about total/pool users); about 5% of users have none.
 */
export function userBodies(seed: number, externalIdPool: number): () => UserBody {
  const random = prng(seed);
  let serial = 0;
  return () => {
    serial++;
    const first = pick(random, FIRST_NAMES);
    const last = pick(random, LAST_NAMES);
    const [city, state, zip, area] = pick(random, PLACES);
    const local = `${first}.${last}`.normalize('NFD').replace(/[^A-Za-z.]/g, '').toLowerCase();
    const body: UserBody = {
      first_name: first,
      last_name: last,
      email: `${local}${serial % 1000}@${pick(random, EMAIL_DOMAINS)}`,
      phone_number: `(${area}) ${200 + Math.floor(random() * 800)}-${digits(random, 4)}`,
      ssn: `${String(1 + Math.floor(random() * 665)).padStart(3, '0')}-${digits(random, 2)}-${digits(random, 4)}`,
      address: {
        line1: `${1 + Math.floor(random() * 9899)} ${pick(random, STREETS)} ${pick(random, STREET_KINDS)}`,
        line2: random() < 0.4 ? `Apt ${1 + Math.floor(random() * 40)}${pick(random, ['A', 'B', 'C', ''])}` : null,
        city,
        state,
        postal_code: `${zip}${digits(random, 2)}`,
        country: 'US',
      },
      birth_date: { year: 1950 + Math.floor(random() * 55), month: 1 + Math.floor(random() * 12), day: 1 + Math.floor(random() * 28) },
      external_metadata: {
        source: pick(random, SOURCES),
        product: pick(random, PRODUCTS),
        applicant_ref: 100_000 + Math.floor(random() * 900_000),
        consent: random() < 0.97,
      },
    };
    if (random() >= 0.05) body.external_id = externalIdFor(Math.floor(random() * externalIdPool));
    return body;
  };
}

export const externalIdFor = (n: number) => `crm-${String(n).padStart(7, '0')}`;

/** A small PATCH body: a move to a new apartment and a new phone number. */
export function patchBodies(seed: number): () => Partial<UserBody> {
  const random = prng(seed);
  return () => {
    const [city, state, zip, area] = pick(random, PLACES);
    return {
      phone_number: `(${area}) ${200 + Math.floor(random() * 800)}-${digits(random, 4)}`,
      address: {
        line1: `${1 + Math.floor(random() * 9899)} ${pick(random, STREETS)} ${pick(random, STREET_KINDS)}`,
        line2: `Unit ${1 + Math.floor(random() * 300)}`,
        city,
        state,
        postal_code: `${zip}${digits(random, 2)}`,
        country: 'US',
      },
    };
  };
}
