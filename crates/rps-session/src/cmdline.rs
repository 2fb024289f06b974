//! Parsing PowerShell cmdlet lines (`Get-Mailbox -ResultSize 5 | Set-Mailbox ...`) into commands.
