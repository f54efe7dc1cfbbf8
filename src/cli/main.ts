#!/usr/bin/env -S node --initial-old-space-size=128
/**
 * The `uemlink` command: composition only; each sub-command lives in its own module.
 *
 * The first line carries NODE_FLAGS (common/v8-tuning.ts; a test keeps them equal) because this
 * file is package.json's `bin`: `npx uemlink`, a global `npm install` and running this file
 * directly start node through it, not through the launchers that pass the flags themselves.
 * `env -S` splits the line into words (GNU coreutils 8.30+, BSD and macOS env).
 */
import './v8-flags.js'; // first: V8 settings before anything else is evaluated
import { Command, CommanderError } from 'commander';
import { VERSION } from '../common/version.js';
import { cloudCommands } from './cloud.js';
import { EXIT, isDaemon } from './common.js';
import { redactString } from '../common/redact.js';
import { connectorCommands } from './connector.js';
import { simulateUemCommand } from '../uem/simulator/cli.js';
import { demoCommand } from './demo.js';
import { didYouMean } from '../common/did-you-mean.js';

const program = new Command('uemlink')
  .description('Outbound-only connector and cloud relay for on-premises UEM/MDM servers')
  .version(VERSION, '-V, --version')
  // Commander echoes what it could not parse ("unknown option '--tokne=ulpt1…'"): redacted like
  // every other message. Set before the sub-commands are added, which copy it.
  .configureOutput({ writeErr: (str) => process.stderr.write(redactString(str)) })
  .showHelpAfterError()
  .addHelpText('after', '\nExit codes: 0 success, 1 failure (said on stderr), 2 usage error, 78 configuration error (systemd units do not restart on it).\nDocs: docs/runbook.md, docs/api.md (every command), docs/config.md.')
  .exitOverride();

// A reader that went away (`uemlink … | head -1`, a journald restart) is not a crash: a command
// exits quietly with what it meant to exit with; a daemon keeps relaying without its stdout.
for (const out of [process.stdout, process.stderr]) {
  out.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED') throw e;
    if (!isDaemon()) process.exit(process.exitCode ?? EXIT.OK);
  });
}

cloudCommands(program);
connectorCommands(program);
simulateUemCommand(program);
demoCommand(program);
strictHelp(program);

/**
 * `help NAME` for a NAME that is no command: commander prints the group's help and exits 2 without
 * saying why, which reads like a help page rather than a typo. Each group gets its own `help`
 * that names the unknown command (with a "did you mean") as `uemlink bogus` does.
 */
function strictHelp(group: Command): void {
  if (group.commands.length === 0) return;
  for (const sub of group.commands) strictHelp(sub);
  group.helpCommand(false);
  group
    .command('help [command]')
    .description('display help for command')
    .action((name: string | undefined) => {
      if (name === undefined) group.help();
      const sub = group.commands.find((c) => c.name() === name && c.name() !== 'help');
      if (sub) sub.help();
      const names = group.commands.map((c) => c.name()).filter((n) => n !== 'help');
      const guess = didYouMean(name!, names);
      group.error(`error: unknown command '${name}'${guess ? `\n(Did you mean ${guess}?)` : ''}`, {
        code: 'commander.unknownCommand',
        exitCode: EXIT.USAGE,
      });
    });
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // --help and --version end here too, with exit code 0.
    process.exit(e.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
  }
  throw e;
}
