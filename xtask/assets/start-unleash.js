// Starts a throwaway Unleash server for the interop tests (run by `cargo xtask services up`).
// Its database, port and tokens come from the environment the harness sets.
const unleash = require('unleash-server');

unleash
  .start({
    db: {
      host: '127.0.0.1',
      port: Number(process.env.UNLEASH_PG_PORT),
      user: 'postgres',
      password: 'unused-trust-auth',
      database: 'unleash',
      ssl: false,
    },
    server: { host: '127.0.0.1', port: Number(process.env.UNLEASH_PORT) },
    authentication: {
      initApiTokens: [
        { environment: '*', project: '*', secret: process.env.UNLEASH_ADMIN_TOKEN, type: 'admin', tokenName: 'infra-admin' },
        {
          environment: 'development',
          project: '*',
          secret: process.env.UNLEASH_CLIENT_TOKEN,
          type: 'client',
          tokenName: 'infra-client',
        },
      ],
    },
    logLevel: 'warn',
  })
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
