// An OpenID provider Tessera did not write: panva's `oidc-provider` (installed by
// scripts/client-libs), with its development sign-in and consent pages, which accept any
// account id. It serves on PORT, with one confidential client, Tessera, whose redirect URI is
// REDIRECT, and prints "ready" once it listens.
const { default: Provider } = await import(`${process.env.OP_DIR}/node_modules/oidc-provider/lib/index.js`);

const port = Number(process.env.PORT);
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'given_name', 'family_name'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@op.example`, email_verified: true, name: `${id} at the provider`, given_name: id, family_name: 'Provider' };
      },
    };
  },
});
provider.listen(port, '127.0.0.1', () => console.log('ready'));
