#!/usr/bin/perl
# Verify DKIM signatures with Perl's Mail::DKIM, an implementation independent of dkimpy.
# The public key comes from the environment (DKIM_NAME, DKIM_TXT), never from real DNS.
# Prints one line per signature: "<result> <domain>", exit 0.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Net::DNS;

my ($name, $txt) = ($ENV{DKIM_NAME}, $ENV{DKIM_TXT});
no warnings 'redefine';
*Mail::DKIM::DNS::query = sub {
    my ($domain, $type) = @_;
    return () unless lc($domain) eq lc($name) && $type eq 'TXT';
    my @strings = map { '"' . $_ . '"' } unpack('(A255)*', $txt);
    return (Net::DNS::RR->new("$domain. 60 IN TXT " . join(' ', @strings)));
};
my $verifier = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\r?\n\z/\r\n/;
    $verifier->PRINT($line);
}
$verifier->CLOSE();
foreach my $signature ($verifier->signatures) {
    printf "%s %s\n", $signature->result, $signature->domain;
}
