// The API's objects as the console reads them (see the OpenAPI document at /openapi.json).

export interface Page<T> {
  next: string | null;
  previous: string | null;
  results: T[];
}

export interface Address {
  city: string | null;
  line1: string | null;
  line2: string | null;
  state: string | null;
  country: string | null;
  postal_code: string | null;
}

export interface BirthDate {
  year: number | null;
  month: number | null;
  day: number | null;
}

export interface User {
  id: string;
  created_at: string;
  items_connected: string[];
  employers_connected: string[];
  external_metadata: unknown;
  external_id: string | null;
  first_name: string | null;
  last_name: string | null;
  email: string | null;
  phone_number: string | null;
  ssn: string | null;
  address: Address;
  birth_date: BirthDate;
}

export interface Account {
  id: string;
  user: string;
  employers: string[];
  item: string;
  source: string;
  created_at: string;
  updated_at: string;
  scanned_at: string | null;
  connection: {
    status: 'connecting' | 'connected' | 'error';
    error_code: string | null;
    error_message: string | null;
    updated_at: string;
  };
}

export interface Webhook {
  id: string;
  name: string;
  url: string;
  events: string[];
  config: { include_resource: boolean };
  has_secret: boolean;
  created_at: string;
}

export interface Delivery {
  id: string;
  webhook: string;
  event: string;
  user: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  last_response_code: number | null;
  last_error: string | null;
  next_attempt_at: string | null;
  created_at: string;
  delivered_at: string | null;
}

export interface ApiKey {
  id: string;
  name: string;
  created_at: string;
  revoked_at: string | null;
  /** The key this console signed in with. */
  current: boolean;
}

/** The events a subscription can name: the service's own list. */
export { WEBHOOK_EVENTS } from '../../src/webhooks/webhooks.events';
