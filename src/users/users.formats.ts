// String formats of the User fields: checks used by validation and the normal form stored.
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';

// Django's EmailValidator, which produced the contract's "Enter a valid email address.".
// Its quoted-string local part admits control characters by design (RFC 5322).
const EMAIL_USER =
  // eslint-disable-next-line no-control-regex
  /^(?:[-!#$%&'*+/=?^_`{}|~0-9A-Z]+(?:\.[-!#$%&'*+/=?^_`{}|~0-9A-Z]+)*|"(?:[\x01-\x08\x0b\x0c\x0e-\x1f!#-[\]-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*")$/i;
const EMAIL_DOMAIN = /^(?:[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?\.)+[A-Z0-9-]{2,63}$/i;

export function isEmail(value: string): boolean {
  if (value.length > 320) return false;
  const at = value.lastIndexOf('@');
  if (at <= 0) return false;
  const user = value.slice(0, at);
  const domain = value.slice(at + 1);
  if (!EMAIL_USER.test(user)) return false;
  if (domain === 'localhost') return true;
  const literal = /^\[(?:IPv6:)?(.+)\]$/i.exec(domain);
  if (literal) return isIP(literal[1] ?? '') !== 0;
  if (domain.endsWith('-')) return false;
  if (EMAIL_DOMAIN.test(domain)) return true;
  const ascii = domainToASCII(domain);
  return ascii !== '' && ascii !== domain && EMAIL_DOMAIN.test(ascii) && !ascii.endsWith('-');
}

/**
 * The last number parsed, with its E.164 form. A create or update parses its number twice, once to validate it
 * (the schema's `phone` format) and once to store it normalized, and a parse with full metadata costs ~27 µs here,
 * a tenth of a create. The second look in the same turn of the event loop finds it here. It is dropped when the turn
 * ends, so no number stays in memory beyond the request that brought it.
 */
let recent: { value: string; e164: string | undefined } | undefined;
const forget = () => {
  recent = undefined;
};

/** What toE164 holds now (for the tests: nothing once the turn that parsed it has ended). */
export const heldPhoneNumber = (): string | undefined => recent?.value;

/**
 * A phone number in E.164, or undefined when it is not a real number. Numbers without a
 * country code are read as US numbers; extensions are refused since E.164 cannot carry them.
 */
export function toE164(value: string): string | undefined {
  if (recent?.value === value) return recent.e164;
  const phone = parsePhoneNumberFromString(value, { defaultCountry: 'US', extract: false });
  const e164 = !phone || phone.ext || !phone.isValid() ? undefined : phone.number;
  if (recent === undefined) setImmediate(forget);
  recent = { value, e164 };
  return e164;
}

export function isSsn(value: string): boolean {
  return /^(?:\d-?){8}\d$/.test(value);
}

/** open_banking.end_user.phone: 10 or 11 digits, hyphens allowed. */
export function isEndUserPhone(value: string): boolean {
  return /^[\d-]+$/.test(value) && /^\d{10,11}$/.test(value.replaceAll('-', ''));
}

// ISO 3166-1 alpha-2, officially assigned codes.
export const COUNTRY_CODES: ReadonlySet<string> = new Set(
  (
    'AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT ' +
    'BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ' +
    'ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT ' +
    'HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS ' +
    'LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI ' +
    'NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG ' +
    'SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG ' +
    'UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW'
  ).split(' '),
);
