// Resolves credentials for an SSO profile with fromSSO (refreshing the token when due), then calls
// STS GetCallerIdentity with them. Prints one JSON line: {"arn", "account", "expiration"} or {"error"}.
import { fromSSO } from "@aws-sdk/credential-providers";
import { STSClient, GetCallerIdentityCommand } from "@aws-sdk/client-sts";

const profile = process.argv[2];
try {
  const provider = fromSSO({ profile });
  const credentials = await provider();
  const sts = new STSClient({ region: process.env.AWS_REGION, credentials });
  const identity = await sts.send(new GetCallerIdentityCommand({}));
  console.log(JSON.stringify({
    arn: identity.Arn,
    account: identity.Account,
    userId: identity.UserId,
    expiration: credentials.expiration ? credentials.expiration.toISOString() : null,
  }));
} catch (error) {
  console.log(JSON.stringify({ error: error.name, message: error.message }));
  process.exitCode = 1;
}
