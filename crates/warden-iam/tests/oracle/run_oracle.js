// Runs every case of a cases.jsonl file through the independent evaluator
// @cloud-copilot/iam-simulate (AGPL: installed by the test command into a tools directory,
// never vendored) and prints one JSON line per case: {"id", "decision"}.
//
// Usage: NODE_PATH=<node_modules> node run_oracle.js <cases.jsonl>
// Decisions: allowed | explicitDeny | implicitDeny | error (the oracle's validator refused a
// policy, or the simulation threw).
'use strict';

const fs = require('fs');
const path = require('path');
const sim = require('@cloud-copilot/iam-simulate');
const iamPolicy = require('@cloud-copilot/iam-policy');

// runUnsafeSimulation (0.1.x) loads the resource policy without a name and then crashes
// reading it, so the same steps are taken here through the package's own modules.
const base = path.dirname(require.resolve('@cloud-copilot/iam-simulate'));
const { authorize } = require(path.join(base, 'core_engine/CoreSimulatorEngine.js'));
const { AwsRequestImpl } = require(path.join(base, 'request/request.js'));
const { RequestContextImpl } = require(path.join(base, 'requestContext.js'));
const { DiscoveryContextKeyConstraints } = require(
  path.join(base, 'context_keys/discoveryContextKeyConstraints.js'),
);

const DEFAULT_ACCOUNT = '123456789012';
const NAMES = {
  Allowed: 'allowed',
  ExplicitlyDenied: 'explicitDeny',
  ImplicitlyDenied: 'implicitDeny',
};

function accountOf(principal) {
  if (typeof principal === 'string' && principal.startsWith('arn:')) {
    return principal.split(':')[4] || DEFAULT_ACCOUNT;
  }
  return DEFAULT_ACCOUNT;
}

function validationErrors(c) {
  const errors = [];
  (c.identityPolicies || []).forEach((p) => errors.push(...iamPolicy.validateIdentityPolicy(p)));
  if (c.resourcePolicy) {
    errors.push(...iamPolicy.validateResourcePolicy(c.resourcePolicy));
  }
  return errors;
}

function decide(c) {
  // Only cases that expect a refusal consult the oracle's validator: its rules on valid
  // documents are stricter in places that do not matter to evaluation (e.g. Sid syntax).
  if (c.expect === 'error' && validationErrors(c).length > 0) {
    return 'error';
  }
  const principal = c.principal === null ? sim.anonymousPrincipal : c.principal;
  const request = new AwsRequestImpl(
    principal,
    // Warden has one account: the resource always lives in the caller's account.
    { resource: c.resource, accountId: accountOf(c.principal) },
    c.action,
    new RequestContextImpl(c.context || {}),
  );
  const analysis = authorize({
    request,
    sessionPolicy: undefined,
    identityPolicies: (c.identityPolicies || []).map((p, i) =>
      iamPolicy.loadPolicy(p, { name: `identity-${i}` }),
    ),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: c.resourcePolicy
      ? iamPolicy.loadPolicy(c.resourcePolicy, { name: 'resource' })
      : undefined,
    permissionBoundaries: undefined,
    vpcEndpointPolicies: undefined,
    simulationParameters: {
      simulationMode: 'Strict',
      discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([]),
    },
    serviceSettings: { s3: {} },
  });
  return NAMES[analysis.result] || `unknown:${analysis.result}`;
}

const lines = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l.trim());
const out = [];
for (const line of lines) {
  const c = JSON.parse(line);
  let decision;
  try {
    decision = decide(c);
  } catch (e) {
    decision = 'error';
  }
  out.push(JSON.stringify({ id: c.id, decision }));
}
process.stdout.write(out.join('\n') + '\n');
