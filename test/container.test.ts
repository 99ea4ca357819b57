// The container files, checked without a Docker engine (none runs here): the Dockerfile linted and read stage by
// stage, compose.yaml parsed, the proxy's configuration read against it.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { validate } from 'dockerfile-utils';
import { parse } from 'yaml';
import { ROOT } from './helpers/process.js';

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

interface Instruction {
  keyword: string;
  args: string;
}

/** The Dockerfile's instructions per stage (continuation lines joined, comments dropped), keyed by stage name. */
function stages(text: string): Map<string, Instruction[]> {
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const result = new Map<string, Instruction[]>();
  let current: Instruction[] | undefined;
  for (const line of logical) {
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (keyword.toUpperCase() === 'FROM') {
      const name = /\sAS\s+(\S+)$/i.exec(args)?.[1] ?? String(result.size);
      result.set(name, (current = []));
    }
    current?.push({ keyword: keyword.toUpperCase(), args });
  }
  return result;
}

/** An exec-form (JSON array) argument list, or fails. */
function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  assert.ok(Array.isArray(parsed) && parsed.every((part) => typeof part === 'string'), `not exec form: ${args}`);
  return parsed as string[];
}

describe('Dockerfile', () => {
  const text = read('Dockerfile');
  const byStage = stages(text);
  const runtime = [...byStage.values()].at(-1) ?? [];
  const all = (stage: Instruction[], keyword: string) => stage.filter((i) => i.keyword === keyword);
  const last = (stage: Instruction[], keyword: string) => all(stage, keyword).at(-1);

  it('passes the linter (dockerfile-utils) without an error or a warning, and the linter does find them', () => {
    assert.deepEqual(
      validate(text).map((d) => `line ${d.range.start.line + 1}: ${d.message}`),
      [],
    );
    const broken = validate('FROM node:20-slim\nHEALTHCHECK CMD a\nHEALTHCHECK CMD b\nEXPOSE\nCOPPY a b\n');
    assert.ok(broken.length >= 3, `the linter found ${broken.length} problems in a broken Dockerfile`);
  });

  it('builds in a stage with dev dependencies and runs `npm ci` without the prepare script', () => {
    const build = byStage.get('build');
    assert.ok(build, `no build stage: ${[...byStage.keys()].join(', ')}`);
    const runs = [...byStage.values()].flatMap((stage) => all(stage, 'RUN')).map((i) => i.args);
    const installs = runs.filter((args) => /\bnpm ci\b/.test(args));
    assert.ok(installs.length >= 2, installs.join('\n'));
    // package.json's prepare runs npm run build, which needs the sources (build stage) or dev tools (production).
    for (const install of installs) assert.match(install, /--ignore-scripts/, install);
    assert.ok(all(build, 'RUN').some((i) => /\bnpm run build\b/.test(i.args)), 'the build stage does not build');
    assert.ok(runs.some((args) => /\bnpm ci\b.*--omit=dev/.test(args)), 'no production-only install');
    assert.ok(runs.filter((args) => /--ignore-scripts/.test(args)).every((args) => /npm rebuild better-sqlite3/.test(args)), 'better-sqlite3 is never built');
  });

  it('runs as a non-root user with production dependencies only, a health check, a volume and no build at start', () => {
    assert.ok(byStage.size >= 3, 'not a multi-stage build');
    const user = last(runtime, 'USER')?.args ?? 'root';
    assert.doesNotMatch(user, /^(root|0)(:|$)/, `the runtime runs as ${user}`);
    // The USER comes after every RUN of the runtime stage, so nothing after it runs as root by mistake, and the
    // entry point after it.
    const index = (i: Instruction | undefined) => (i ? runtime.indexOf(i) : -1);
    assert.ok(index(last(runtime, 'USER')) > index(last(runtime, 'RUN')));

    const copies = all(runtime, 'COPY').map((i) => i.args);
    assert.ok(copies.some((args) => /--from=production-dependencies\s+\/app\/node_modules\b/.test(args)), copies.join('\n'));
    assert.ok(!copies.some((args) => /--from=build\s+\S*node_modules/.test(args)), 'dev dependencies copied into the runtime');
    assert.ok(copies.some((args) => /--from=build\s+\/app\/dist\b/.test(args)));

    const healthcheck = last(runtime, 'HEALTHCHECK')?.args ?? '';
    const probe = execForm(healthcheck.replace(/^(--\S+\s+)*CMD\s+/, ''));
    assert.equal(probe[0], 'node', 'the health check must not need curl or wget (node:20-slim has neither)');
    assert.match(probe.join(' '), /\/healthz/);

    const command = [...execForm(last(runtime, 'ENTRYPOINT')?.args ?? '[]'), ...execForm(last(runtime, 'CMD')?.args ?? '[]')];
    assert.deepEqual(command, ['node', 'dist/main.js', 'serve']);
    assert.ok(!runtime.some((i) => /\bnpm (start|run)\b/.test(i.args)), 'npm start builds before serving');

    const env = all(runtime, 'ENV').map((i) => i.args).join(' ');
    assert.match(env, /\bHOST=0\.0\.0\.0\b/, 'HOST defaults to 127.0.0.1: unreachable from outside the container');
    const volume = execForm(last(runtime, 'VOLUME')?.args ?? '[]');
    const databaseUrl = /\bDATABASE_URL=(\S+)/.exec(env)?.[1] ?? '';
    assert.ok(volume.some((dir) => databaseUrl.startsWith(`${dir}/`)), `DATABASE_URL ${databaseUrl} is not in the volume ${volume.join(', ')}`);
    const port = /\bPORT=(\d+)/.exec(env)?.[1];
    assert.equal(last(runtime, 'EXPOSE')?.args, port);
  });

  it('is sent only what the build reads (.dockerignore): never data/, .env or node_modules', () => {
    const lines = read('.dockerignore').split('\n').filter((line) => line && !line.startsWith('#'));
    assert.equal(lines[0], '*', 'everything is excluded first');
    const included = lines.filter((line) => line.startsWith('!')).map((line) => line.slice(1).replace(/\/$/, ''));
    for (const copied of ['package.json', 'package-lock.json', 'src', 'console']) assert.ok(included.includes(copied), copied);
    for (const secret of ['data', '.env', 'node_modules', 'backups']) assert.ok(!included.includes(secret), secret);
  });

  it('has every npm workspace: its manifest before `npm ci`, its sources before the build, its build in the runtime', () => {
    const { workspaces = [] } = JSON.parse(read('package.json')) as { workspaces?: string[] };
    assert.ok(workspaces.length > 0, 'the package has workspaces (the typed client)');
    const all = stages(read('Dockerfile'));
    const copies = (stage: string) => (all.get(stage) ?? []).filter((i) => i.keyword === 'COPY').map((i) => i.args);
    const included = read('.dockerignore').split('\n').filter((line) => line.startsWith('!')).map((line) => line.slice(1).replace(/\/$/, ''));
    for (const workspace of workspaces) {
      assert.ok(included.includes(workspace), `.dockerignore lets ${workspace} in`);
      assert.ok(copies('toolchain').some((args) => args.startsWith(`${workspace}/package.json `)), `${workspace}/package.json is there for npm ci`);
      assert.ok(copies('build').some((args) => args.startsWith(`${workspace} `)), `${workspace} is copied before the build`);
      assert.ok(copies('runtime').some((args) => args.includes(`/app/${workspace}/dist `)), `${workspace}/dist is in the runtime image`);
    }
  });
});

describe('compose.yaml', () => {
  interface Service {
    image?: string;
    build?: unknown;
    command?: string[];
    environment?: Record<string, string>;
    depends_on?: Record<string, { condition: string }>;
    healthcheck?: { test: string[] };
    volumes?: string[];
    ports?: string[];
  }
  const compose = parse(read('compose.yaml'), { merge: true }) as { services: Record<string, Service>; volumes?: Record<string, unknown> };
  const { services } = compose;
  const instances = Object.entries(services).filter(([, service]) => service.environment?.DATABASE_URL && !service.command);

  it('runs two instances of the service on one PostgreSQL, with the same secrets', () => {
    assert.deepEqual(instances.map(([name]) => name).sort(), ['api-1', 'api-2']);
    const [[, first], [, second]] = instances as [[string, Service], [string, Service]];
    for (const name of ['DATABASE_URL', 'USER_TOKEN_SECRET', 'PII_KEYS']) {
      assert.ok(first.environment?.[name], `${name} is not set`);
      assert.equal(first.environment?.[name], second.environment?.[name], `the instances differ in ${name}`);
    }
    const host = /@([^:/]+)[:/]/.exec(first.environment!.DATABASE_URL!)?.[1] ?? '';
    assert.ok(services[host], `DATABASE_URL names the host ${host}, which is no service`);
    assert.match(services[host]!.image ?? '', /^postgres:/);
    assert.equal(first.environment?.MIGRATE_ON_START, 'false');
  });

  it('keeps PostgreSQL in a volume behind a health check, and migrates once before the instances start', () => {
    const postgres = services.postgres!;
    assert.match(postgres.healthcheck?.test.join(' ') ?? '', /pg_isready/);
    const volume = postgres.volumes?.find((v) => v.endsWith(':/var/lib/postgresql/data'))?.split(':')[0] ?? '';
    assert.ok(compose.volumes && volume in compose.volumes, `the data is not in a named volume: ${postgres.volumes?.join(', ')}`);
    const migrate = services.migrate!;
    assert.deepEqual(migrate.command, ['migrate']);
    assert.equal(migrate.depends_on?.postgres?.condition, 'service_healthy');
    assert.equal(migrate.environment?.DATABASE_URL, services['api-1']!.environment?.DATABASE_URL);
    for (const [name, service] of instances) {
      assert.equal(service.depends_on?.migrate?.condition, 'service_completed_successfully', name);
      assert.equal(service.depends_on?.postgres?.condition, 'service_healthy', name);
    }
  });

  it('puts a proxy in front whose configuration sends to both instances on the port they listen on', () => {
    const proxy = services.proxy!;
    assert.match(proxy.image ?? '', /^nginx:/);
    const mount = proxy.volumes?.find((v) => v.includes('/etc/nginx/'))?.split(':')[0] ?? '';
    assert.ok(existsSync(join(ROOT, mount)), `the proxy mounts ${mount}, which is not in the repository`);
    const conf = read(mount);
    const upstream = /upstream\s+(\S+)\s*\{([^}]*)\}/.exec(conf);
    assert.ok(upstream, 'no upstream block');
    const servers = [...(upstream[2] ?? '').matchAll(/^\s*server\s+([^\s;]+)/gm)].map((m) => m[1]);
    const port = /\bEXPOSE\s+(\d+)/.exec(read('Dockerfile'))?.[1];
    assert.deepEqual(servers.sort(), instances.map(([name]) => `${name}:${port}`).sort());
    assert.match(conf, new RegExp(`proxy_pass\\s+http://${upstream[1]};`));
    for (const [name] of instances) assert.equal(proxy.depends_on?.[name]?.condition, 'service_healthy', name);
  });
});
