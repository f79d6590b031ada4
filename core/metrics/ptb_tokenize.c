/* PTB tokenization as coco-caption / pycocoevalcap run it: Stanford CoreNLP 3.4.1's PTBTokenizer with
 * `-preserveLines -lowerCase` (lexer options tokenizeNLs + defaults), then the wrapper's removal of 17
 * punctuation tokens. See docs/metrics.md for the rules in prose.
 *
 * How it works: the CoreNLP lexer is a JFlex scanner, i.e. a list of token classes (regular expressions,
 * some with trailing context `r1/r2`) where, at each position, the class with the LONGEST match wins
 * (trailing context included in the length), ties going to the class listed first; the token is the r1
 * part, possibly normalised, and some classes push characters back. Here every class is a PCRE2 pattern
 * run with the DFA matcher (pcre2_dfa_match finds the longest match, as a scanner does), in the same
 * priority order, and the same actions follow. Literal words match case-insensitively and character
 * classes case-sensitively, as under JFlex's %caseless. JFlex reads UTF-16: classes only hold BMP
 * characters, so a letter or digit outside the BMP is no letter here either (emoji are deleted).
 *
 * Speed: a plain ASCII word followed by a space, a newline or the end is one token whatever the other
 * classes say (checked in docs/metrics.md); it skips the pattern list. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "metrics/metrics.h"
#include "metrics/unicode.h"

/* ---- token classes (names follow the lexer's macros) ---- */
#define BMP_EXCL "\\x{10000}-\\x{10FFFF}"
#define PL "[^\\P{L}" BMP_EXCL "]"          /* [:letter:] */
#define PD "[^\\P{Nd}" BMP_EXCL "]"         /* [:digit:] */
#define PLU "[^\\P{Lu}" BMP_EXCL "]"        /* [:uppercase:] */
#define PLD "(?:" PL "|" PD ")"
#define SPLET "&[aeiouAEIOU](?i:acute|grave|uml);"
#define LETTER_EXTRA                                                                                     \
    "[\\x{00AD}\\x{0237}-\\x{024F}\\x{02C2}-\\x{02C5}\\x{02D2}-\\x{02DF}\\x{02E5}-\\x{02FF}\\x{0300}-"    \
    "\\x{036F}\\x{0370}-\\x{037D}\\x{0384}\\x{0385}\\x{03CF}\\x{03F6}\\x{03FC}-\\x{03FF}\\x{0483}-"       \
    "\\x{0487}\\x{04CF}\\x{04F6}-\\x{04FF}\\x{0510}-\\x{0525}\\x{055A}-\\x{055F}\\x{0591}-\\x{05BD}"      \
    "\\x{05BF}\\x{05C1}\\x{05C2}\\x{05C4}\\x{05C5}\\x{05C7}\\x{0615}-\\x{061A}\\x{063B}-\\x{063F}"        \
    "\\x{064B}-\\x{065E}\\x{0670}\\x{06D6}-\\x{06EF}\\x{06FA}-\\x{06FF}\\x{070F}\\x{0711}\\x{0730}-"      \
    "\\x{074F}\\x{0750}-\\x{077F}\\x{07A6}-\\x{07B1}\\x{07CA}-\\x{07F5}\\x{07FA}\\x{0900}-\\x{0903}"      \
    "\\x{093C}\\x{093E}-\\x{094E}\\x{0951}-\\x{0955}\\x{0962}-\\x{0963}\\x{0981}-\\x{0983}\\x{09BC}-"     \
    "\\x{09C4}\\x{09C7}\\x{09C8}\\x{09CB}-\\x{09CD}\\x{09D7}\\x{09E2}\\x{09E3}\\x{0A01}-\\x{0A03}"        \
    "\\x{0A3C}\\x{0A3E}-\\x{0A4F}\\x{0A81}-\\x{0A83}\\x{0ABC}-\\x{0ACF}\\x{0B82}\\x{0BBE}-\\x{0BC2}"      \
    "\\x{0BC6}-\\x{0BC8}\\x{0BCA}-\\x{0BCD}\\x{0C01}-\\x{0C03}\\x{0C3E}-\\x{0C56}\\x{0D3E}-\\x{0D44}"     \
    "\\x{0D46}-\\x{0D48}\\x{0E30}-\\x{0E3A}\\x{0E47}-\\x{0E4E}\\x{0EB1}-\\x{0EBC}\\x{0EC8}-\\x{0ECD}]"
#define LETTER "(?:" PL "|" SPLET "|" LETTER_EXTRA ")"
#define DIGIT PD
#define SPACE "[ \\t\\x{00A0}\\x{2000}-\\x{200A}\\x{3000}]"
#define NEWLINE "(?:\\r\\n|\\r|\\n|\\x{2028}|\\x{2029}|\\x0B|\\x0C|\\x{0085})"
#define SPACENL "(?:" SPACE "|" NEWLINE ")"
#define SGML_NAME "[A-Za-z][A-Za-z0-9_:.\\-]*"
#define SGML                                                                                             \
    "<(?:[!?][A-Za-z\\-][^>\\r\\n]*|" SGML_NAME "(?:[ ]+(?:" SGML_NAME "|" SGML_NAME                    \
    "[ ]*=[ ]*(?:'[^']*'|\"[^\"]*\")))*[ ]*/?|/" SGML_NAME ")[ ]*>"
#define SENTEND SPACENL "(?:" SPACENL "|" PLU "|" SGML ")"
#define SPMDASH "(?:&(?i:md|mdash|ndash);|[\\x{0096}\\x{0097}\\x{2013}\\x{2014}\\x{2015}])"
#define SPAMP "&(?i:amp);"
#define SPPUNC "&(?:(?i:ht|tl|ur|lr|qc|ql|qr|odq|cdq)|#[0-9]+);"
#define DATE DIGIT "{1,2}[\\-/]" DIGIT "{1,2}[\\-/]" DIGIT "{2,4}"
#define NUM "(?:" DIGIT "+|" DIGIT "*(?:[.:,\\x{00AD}\\x{066B}\\x{066C}]" DIGIT "+)+)"
#define NUMBER "[\\-+]?" NUM
#define SUBSUPNUM                                                                                        \
    "[\\x{207A}\\x{207B}\\x{208A}\\x{208B}]?(?:[\\x{2070}\\x{00B9}\\x{00B2}\\x{00B3}\\x{2074}-\\x{2079}]+|" \
    "[\\x{2080}-\\x{2089}]+)"
#define FRAC "(?:" DIGIT "{1,4}[\\- \\x{00A0}])?" DIGIT "{1,4}(?:\\\\?/|\\x{2044})" DIGIT "{1,4}"
#define FRAC2 "[\\x{00BC}\\x{00BD}\\x{00BE}\\x{2153}-\\x{215E}]"
#define DOLSIGN "(?:[A-Z]*\\$|#)"
#define DOLSIGN2                                                                                         \
    "[\\x{00A2}\\x{00A3}\\x{00A4}\\x{00A5}\\x{0080}\\x{20A0}\\x{20AC}\\x{060B}\\x{0E3F}\\x{20A4}\\x{FFE0}" \
    "\\x{FFE1}\\x{FFE5}\\x{FFE6}]"
#define WORD LETTER "(?:" LETTER "|" DIGIT ")*(?:[.!?]" LETTER "(?:" LETTER "|" DIGIT ")*)*"
#define FILENAME_EXT                                                                                     \
    "(?i:bat|bmp|c|class|cgi|cpp|dll|doc|docx|exe|gif|gz|h|htm|html|jar|java|jpeg|jpg|mov|mp3|pdf|php|pl|" \
    "png|ppt|ps|py|sql|tar|txt|wav|x|xml|zip)"
#define FILENAME "(?:" LETTER "|" DIGIT ")+(?:[.](?:" LETTER "|" DIGIT ")+)*[.]" FILENAME_EXT
#define APOS "(?:['\\x{0092}\\x{2019}]|&(?i:apos);)"
#define APOSETC "(?:" APOS "|[`\\x{0091}\\x{2018}\\x{201B}])"
#define HYPHEN "[\\-_\\x{058A}\\x{2010}\\x{2011}]"
#define THING_PART "(?:[dDoOlL]" APOSETC PLD ")?" PLD "+"
#define THING THING_PART "(?:" HYPHEN THING_PART ")*"
#define THINGA "[A-Z]+(?:(?:[+&]|" SPAMP ")[A-Z]+)+"
#define THING3 "[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}"
#define ACRO_SPECIAL "(?i:canada|sino|korean|eu|japan|non)-(?i:u\\.s)|(?i:u\\.s\\.-)(?i:u\\.k|u\\.s\\.s\\.r)"
#define ACRO "(?:[A-Za-z](?:\\.[A-Za-z])*|" ACRO_SPECIAL ")"
#define ACRO2 "(?:[A-Za-z](?:\\.[A-Za-z])+|" ACRO_SPECIAL ")"
#define HTHING "[A-Za-z0-9][A-Za-z0-9.,\\x{00AD}]*(?:-(?:[A-Za-z0-9\\x{00AD}]+|" ACRO2 "\\.))+"
#define REDAUX APOS "(?:[msdMSD]|(?i:re|ve|ll))"
#define SWORD "[A-Za-z\\x{00AD}]*[A-MO-Za-mo-z]\\x{00AD}*"
#define SREDAUX "(?i:n)" APOSETC "(?i:t)"
#define APOWORD                                                                                          \
    "(?:" APOS "(?i:n)" APOS "?|[lLdDjJ]" APOS "|(?i:dunkin)" APOS "|(?i:somethin)" APOS "|(?i:ol)" APOS  \
    "|" APOS "(?i:em)|[A-HJ-XZn]" APOSETC PL "{2}" PL "*|" APOS "[2-9](?i:0s)|" APOS "(?i:till?)|" PL PL   \
    "*[aeiouyAEIOUY]" APOSETC "[aeiouA-Z]" PL "*|" APOS "(?i:cause)|(?i:cont'd\\.?|'twas|nor'easter|"     \
    "c'mon|e'er|s'mores|ev'ry|li'l|nat'l)|(?i:o)" APOSETC "(?i:o))"
#define APOWORD2 "(?i:y)" APOS
#define FULLURL "(?i:https?)://[^ \\t\\n\\f\\r\"<>|(){}]+[^ \\t\\n\\f\\r\"<>|.!?(){},\\-]"
/* `,-_` below is a character RANGE (',' to '_') in the original class too: kept as such. */
#define LIKELYURL                                                                                        \
    "(?:(?:(?i:www)\\.(?:[^ \\t\\n\\f\\r\"<>|.!?(){},]+\\.)+[a-zA-Z]{2,4})|(?:(?:[^ \\t\\n\\f\\r\"`'<>|.!?(){}" \
    ",-_$]+\\.)+(?i:com|net|org|edu)))(?:/[^ \\t\\n\\f\\r\"<>|()]+[^ \\t\\n\\f\\r\"<>|.!?(){},\\-])?"
#define EMAIL_PART "[^ \\t\\n\\f\\r\"<>|(){}.\\x{00A0}]+"
#define EMAIL                                                                                            \
    "(?:&(?i:lt);|<)?[a-zA-Z0-9][^ \\t\\n\\f\\r\"<>|()\\x{00A0}{}]*@(?:" EMAIL_PART "\\.)*(?:" EMAIL_PART  \
    ")(?:&(?i:gt);|>)?"
#define TWITTER "(?:@[a-zA-Z_][a-zA-Z_0-9]*|#" LETTER "+)"
#define ABMONTH "(?i:jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)"
#define ABDAYS "(?i:mon|tue|tues|wed|thu|thurs|fri)"
#define ABSTATE                                                                                          \
    "(?:(?i:ala|ariz)|A(?i:z)|A(?i:rk)|(?i:calif|colo|conn|ct|dak)|D(?i:el)|(?i:fla|ga)|I(?i:ll)|"        \
    "(?i:ind|kans?|ky)|L(?i:a)|M(?i:ass)|(?i:md|mich|minn)|M(?i:iss)|(?i:mo|mont|neb|nev|okla)|O(?i:re)|" \
    "P(?i:a)|(?i:penn|tenn)|T(?i:ex)|(?i:va|vt)|W(?i:ash)|(?i:wisc?|wyo))"
#define ABCOMP "(?:(?i:inc|cos?|corp)|(?i:pp?t)[ye](?i:s?)|(?i:ltd|plc|rt|bancorp|bhd|assn|univ|intl|sys))"
#define ABNUM "(?i:tel|est|ext|sq)"
#define ABPTIT "(?i:jr|sr|bros|(?:ed|ph)\\.d|blvd|rd|esq)"
#define ABBREV1                                                                                          \
    "(?:" ABMONTH "|" ABDAYS "|" ABSTATE "|" ABCOMP "|" ABNUM "|" ABPTIT "|(?i:etc|al|seq|bldg))\\."
#define ABTITLE                                                                                          \
    "(?:(?i:mr|mrs|ms)|M(?i:iss)|(?i:drs?|profs?|sens?|reps?|attys?|lt|col|gen|messrs|govs?|adm|rev|maj|"  \
    "sgt|cpl|pvt|capt|ste?|ave|pres|lieut|hon|brig|co?mdr|pfc|spc|supts?|det|mt|ft|adj|adv|asst|assoc|"   \
    "ens|insp|mlle|mme|msgr|sfc))"
#define ABCOMP2 "(?:(?i:invt|elec|natl)|(?i:m)[ft](?i:g)|(?i:dept))"
#define ABBREV4 "(?:" ABTITLE "|(?i:vs|alex|wm|jos|cie|a\\.k\\.a|cf|treas|ph)|" ACRO "|" ABCOMP2 ")"
#define ABBREV3 "(?i:ca|figs?|prop|nos?|art|bldg|pp|op)\\."
#define PHONE                                                                                            \
    "(?:(?:\\([0-9]{2,3}\\)[ \\x{00A0}]?|(?:\\+\\+?)?(?:[0-9]{2,4}[\\- \\x{00A0}])?[0-9]{2,4}[\\- "        \
    "\\x{00A0}])[0-9]{3,4}[\\- \\x{00A0}]?[0-9]{3,5}|(?:(?:\\+\\+?)?[0-9]{2,4}\\.)?[0-9]{2,4}\\.[0-9]{3,4}" \
    "\\.[0-9]{3,5})"
#define LDOTS "(?:\\.{3,5}|(?:\\.[ \\x{00A0}]){2,4}\\.|[\\x{0085}\\x{2026}])"
#define INSENTP "[,;:\\x{3001}]"
#define QUOTES                                                                                           \
    "(?:" APOS "|''|[`\\x{2018}\\x{2019}\\x{201A}\\x{201B}\\x{201C}\\x{201D}\\x{0091}\\x{0092}\\x{0093}"   \
    "\\x{0094}\\x{201E}\\x{201F}\\x{2039}\\x{203A}\\x{00AB}\\x{00BB}]{1,2})"
#define DBLQUOT "(?:\"|&(?i:quot);)"
#define TBSPEC                                                                                           \
    "(?:-(?i:rrb|lrb|rcb|lcb|rsb|lsb)-|(?i:c\\.d\\.s|pro-|anti-|s&p-500|s&amp;p-500|s&ls|s&amp;ls)|"        \
    "(?i:cap)" APOS "(?i:n)|(?i:c)" APOS "(?i:est))"
#define TBSPEC2 APOS "[0-9][0-9]"
#define SMILEY "[<>]?[:;=][\\-o*']?[()DPdpO\\\\{@|\\[\\]]"
#define ASIANSMILEY                                                                                      \
    "(?:[\\^x=~<>]\\.\\[\\^(?i:x)=~<>\\]|[\\-\\^x=~<>']_[\\-\\^x=~<>']|\\([\\-\\^x=~<>'][_.]?[\\-\\^x=~<>']" \
    "\\)|\\([\\^x=~<>']-[\\^x=~<>'`]\\))"
#define MISCSYMBOL                                                                                       \
    "[+%&~\\^|\\\\\\x{00A6}\\x{00A7}\\x{00A8}\\x{00A9}\\x{00AC}\\x{00AE}\\x{00AF}\\x{00B0}-\\x{00B3}"      \
    "\\x{00B4}-\\x{00BA}\\x{00D7}\\x{00F7}\\x{0387}\\x{05BE}\\x{05C0}\\x{05C3}\\x{05C6}\\x{05F3}\\x{05F4}" \
    "\\x{0600}-\\x{0603}\\x{0606}-\\x{060A}\\x{060C}\\x{0614}\\x{061B}\\x{061E}\\x{066A}\\x{066D}"        \
    "\\x{0703}-\\x{070D}\\x{07F6}\\x{07F7}\\x{07F8}\\x{0964}\\x{0965}\\x{0E4F}\\x{1FBD}\\x{2016}\\x{2017}" \
    "\\x{2020}-\\x{2023}\\x{2030}-\\x{2038}\\x{203B}\\x{203E}-\\x{2042}\\x{2044}\\x{207A}-\\x{207F}"      \
    "\\x{208A}-\\x{208E}\\x{2100}-\\x{214F}\\x{2190}-\\x{21FF}\\x{2200}-\\x{2BFF}\\x{3012}\\x{30FB}"      \
    "\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF20}\\x{FF3B}-\\x{FF40}\\x{FF5B}-\\x{FF65}]"
#define ACRONYM_FOLLOWERS                                                                                \
    "(?:A(?i:bout)|A(?i:ccording)|A(?i:dditionally)|A(?i:fter)|A(?i:n)|A|A(?i:s)|A(?i:t)|B(?i:ut)|"        \
    "E(?i:arlier)|H(?i:e)|H(?i:er)|H(?i:ere)|H(?i:owever)|I(?i:f)|I(?i:n)|I(?i:t)|L(?i:ast)|M(?i:any)|"   \
    "M(?i:ore)|M(?i:r)\\.|M(?i:s)\\.|N(?i:ow)|O(?i:nce)|O(?i:ne)|O(?i:ther)|O(?i:ur)|S(?i:he)|S(?i:ince)|" \
    "S(?i:o)|S(?i:ome)|S(?i:uch)|T(?i:hat)|T(?i:he)|T(?i:heir)|T(?i:hen)|T(?i:here)|T(?i:hese)|T(?i:hey)|" \
    "T(?i:his)|W(?i:e)|W(?i:hen)|W(?i:hile)|W(?i:hat)|Y(?i:et)|Y(?i:ou)|" SGML ")"

typedef enum {
    ACT_PLAIN,      /* the matched text */
    ACT_SOFTHYPHEN, /* without U+00AD ("-" if nothing is left) */
    ACT_KEEP3,      /* push back all but 3 characters (cannot -> can) */
    ACT_KEEP2,      /* 'twas -> 't, 'tis -> 't */
    ACT_CUT2,       /* push back 2 characters (gonna -> gon) */
    ACT_NBSP,       /* spaces become U+00A0 (SGML, fractions) */
    ACT_DASH,       /* "--" */
    ACT_AMP,        /* &amp; -> & */
    ACT_QUOTE_L,    /* LaTeX quotes, probably a left quote */
    ACT_QUOTE_R,    /* LaTeX quotes, probably a right quote */
    ACT_FRAC2,      /* vulgar fractions -> 1/2 etc. */
    ACT_CURRENCY,   /* cent, pound, euro signs */
    ACT_ACRONYM,    /* acronym before a sentence start: "I." -> "I" "."; "U.S." -> "U.S." "." */
    ACT_PERIOD_TOO, /* the token with its period, then the period again as the next token */
    ACT_PHONE,      /* spaces -> U+00A0, parentheses -> -LRB- -RRB- */
    ACT_PARENS,     /* parentheses -> -LRB- -RRB- */
    ACT_LCB, ACT_RCB, ACT_LSB, ACT_RSB, ACT_LRB, ACT_RRB,
    ACT_HYPHENS,    /* 3 or 4 hyphens -> "--" */
    ACT_ELLIPSIS,   /* "..." */
    ACT_LT, ACT_GT, /* "<", ">" (also for &lt; &gt;) */
    ACT_SKIP,       /* white space: no token */
    ACT_NEWLINE,    /* ends the line */
} ptb_action;

typedef struct ptb_rule {
    const char *r1, *r2; /* r2: trailing context (not part of the token) or NULL */
    ptb_action act;
} ptb_rule;

/* The lexer's rules, in its priority order (state YyTraditionalTreebank3, options as coco-caption runs it). */
static const ptb_rule RULES[] = {
    {"(?i:c)[+][+]", NULL, ACT_PLAIN},
    {"(?i:c|f)#", NULL, ACT_PLAIN},
    {"(?i:cannot)", NULL, ACT_KEEP3},
    {"(?i:'twas)", NULL, ACT_KEEP2},
    {"(?i:'tis)", NULL, ACT_KEEP2},
    {"(?i:gonna|gotta|lemme|gimme|wanna)", NULL, ACT_CUT2},
    {SGML, NULL, ACT_NBSP},
    {SPMDASH, NULL, ACT_DASH},
    {SPAMP, NULL, ACT_AMP},
    {SPPUNC, NULL, ACT_PLAIN},
    {WORD, REDAUX, ACT_SOFTHYPHEN},
    {SWORD, SREDAUX, ACT_SOFTHYPHEN},
    {WORD, NULL, ACT_SOFTHYPHEN},
    {APOWORD, NULL, ACT_PLAIN},
    {APOWORD2, PL, ACT_PLAIN},
    {FULLURL, NULL, ACT_PLAIN},
    {LIKELYURL, NULL, ACT_PLAIN},
    {EMAIL, NULL, ACT_PLAIN},
    {TWITTER, NULL, ACT_PLAIN},
    {REDAUX, "[^A-Za-z]", ACT_QUOTE_R},
    {SREDAUX, "[^A-Za-z]", ACT_QUOTE_R},
    {DATE, NULL, ACT_PLAIN},
    {NUMBER, NULL, ACT_SOFTHYPHEN},
    {SUBSUPNUM, NULL, ACT_PLAIN},
    {FRAC, NULL, ACT_NBSP},
    {FRAC2, NULL, ACT_FRAC2},
    {TBSPEC, NULL, ACT_AMP},
    {THING3, NULL, ACT_PLAIN},
    {DOLSIGN, NULL, ACT_PLAIN},
    {DOLSIGN2, NULL, ACT_CURRENCY},
    {ACRO "\\.", "(?:" SPACENL ")+" ACRONYM_FOLLOWERS SPACENL, ACT_ACRONYM},
    {ABBREV3, SPACENL "?" PD, ACT_PLAIN},
    {"(?:(?i:pt)[eyEY]|(?i:co))\\.", SPACE "(?i:ltd|lim)", ACT_PLAIN},
    {ABBREV1, SENTEND, ACT_PERIOD_TOO},
    {ABBREV1, "(?s:..)", ACT_PLAIN},
    {ABBREV1, NULL, ACT_PERIOD_TOO},
    {ABBREV4 "\\.", NULL, ACT_PLAIN},
    {ABBREV4, SPACE, ACT_PLAIN},
    {ACRO, SPACENL, ACT_PLAIN},
    {TBSPEC2, SPACENL, ACT_PLAIN},
    {FILENAME, "(?:" SPACENL "|[.?!,])", ACT_PLAIN},
    {WORD "\\.", INSENTP, ACT_SOFTHYPHEN},
    {PHONE, NULL, ACT_PHONE},
    {DBLQUOT, "[A-Za-z0-9$]", ACT_QUOTE_L},
    {DBLQUOT, NULL, ACT_QUOTE_R},
    {"\\x7F", NULL, ACT_SKIP},
    {"<|&(?i:lt);", NULL, ACT_LT},
    {">|&(?i:gt);", NULL, ACT_GT},
    {SMILEY, "[^A-Za-z0-9]", ACT_PARENS},
    {ASIANSMILEY, NULL, ACT_PARENS},
    {"\\{", NULL, ACT_LCB},
    {"\\}", NULL, ACT_RCB},
    {"\\[", NULL, ACT_LSB},
    {"\\]", NULL, ACT_RSB},
    {"\\(", NULL, ACT_LRB},
    {"\\)", NULL, ACT_RRB},
    {"-+", NULL, ACT_HYPHENS},
    {LDOTS, NULL, ACT_ELLIPSIS},
    {"(?:@+|#+|_+)", NULL, ACT_PLAIN},
    {"(?:\\*+|(?:\\\\\\*){1,3})", NULL, ACT_PLAIN},
    {INSENTP, NULL, ACT_PLAIN},
    {"[?!]+", NULL, ACT_PLAIN},
    {"[.\\x{00A1}\\x{00BF}\\x{037E}\\x{0589}\\x{061F}\\x{06D4}\\x{0700}-\\x{0702}\\x{07FA}\\x{3002}]", NULL, ACT_PLAIN},
    {"=", NULL, ACT_PLAIN},
    {"/", NULL, ACT_PLAIN},
    {HTHING "\\.", INSENTP, ACT_SOFTHYPHEN},
    {HTHING, NULL, ACT_SOFTHYPHEN},
    {THING "\\.", INSENTP, ACT_PLAIN},
    {THING, NULL, ACT_PLAIN},
    {THINGA "\\.", INSENTP, ACT_AMP},
    {THINGA, NULL, ACT_AMP},
    {"'", "[A-Za-z][^ \\t\\n\\r\\x{00A0}]", ACT_QUOTE_L},
    {REDAUX, NULL, ACT_QUOTE_R},
    {SREDAUX, NULL, ACT_QUOTE_R},
    {QUOTES, NULL, ACT_QUOTE_R},
    {"(?:<<|>>)", NULL, ACT_PLAIN},
    {MISCSYMBOL, NULL, ACT_PLAIN},
    {"(?:\\x00|" SPACE "+|[\\x{200B}\\x{200E}\\x{200F}\\x{FEFF}])", NULL, ACT_SKIP},
    {NEWLINE, NULL, ACT_NEWLINE},
    {"&(?i:nbsp);", NULL, ACT_SKIP},
};
#define NRULES (sizeof RULES / sizeof RULES[0])

static pcre2_code *g_r1[NRULES], *g_r2[NRULES];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static char g_compile_error[256];

static pcre2_code *compile(const char *pat)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_ANCHORED, &err, &off, NULL);
    if (!c && !g_compile_error[0]) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        snprintf(g_compile_error, sizeof g_compile_error, "offset %zu: %s", (size_t)off, (char *)msg);
    }
    return c;
}

static void compile_all(void)
{
    for (size_t i = 0; i < NRULES; i++) {
        g_r1[i] = compile(RULES[i].r1);
        g_r2[i] = RULES[i].r2 ? compile(RULES[i].r2) : NULL;
    }
}

/* ---- growable byte buffer ---- */
typedef struct buf { char *p; size_t n, cap; int oom; } buf;
static void buf_put(buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->n + n + 1 > cap) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void buf_str(buf *b, const char *s) { buf_put(b, s, strlen(s)); }
static void buf_cp(buf *b, uint32_t cp) { char t[4]; buf_put(b, t, gr_u_encode(cp, t)); }

/* ---- matching ---- */
typedef struct matcher {
    pcre2_match_data *md;
    int *ws;
    size_t wscount;
    const char *text;
    size_t len;
} matcher;

/* Longest match of code c at pos; the lengths of all matches (longest first) go to lens (at most
 * cap); returns their number, 0 when none, -1 on error. */
static int match_all(matcher *m, pcre2_code *c, size_t pos, size_t *lens, int cap)
{
    for (;;) {
        int rc = pcre2_dfa_match(c, (PCRE2_SPTR)m->text, m->len, pos, PCRE2_NO_UTF_CHECK, m->md, NULL, m->ws,
                                 m->wscount);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc == PCRE2_ERROR_DFA_WSSIZE) {
            int *ws = realloc(m->ws, m->wscount * 4 * sizeof *ws);
            if (!ws) return -1;
            m->ws = ws;
            m->wscount *= 4;
            continue;
        }
        if (rc < 0) return -1;
        int have = rc == 0 ? (int)pcre2_get_ovector_count(m->md) : rc;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
        int n = have < cap ? have : cap;
        for (int i = 0; i < n; i++) lens[i] = ov[2 * i + 1] - pos;
        return n;
    }
}

/* Total length (r1 + trailing context) of rule r at pos, and the token length in *tok; 0 if no match. */
static long rule_match(matcher *m, size_t r, size_t pos, size_t *tok)
{
    size_t lens[64];
    int n = match_all(m, g_r1[r], pos, lens, 64);
    if (n <= 0) return n;
    if (!g_r2[r]) { *tok = lens[0]; return (long)lens[0]; }
    long best = 0;
    for (int i = 0; i < n; i++) {
        if (lens[i] == 0) continue;
        size_t l2;
        int k = match_all(m, g_r2[r], pos + lens[i], &l2, 1);
        if (k < 0) return -1;
        if (k == 0) continue;
        if ((long)(lens[i] + l2) > best) { best = (long)(lens[i] + l2); *tok = lens[i]; }
    }
    return best;
}

static int is_ascii_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* ---- token normalisation ---- */
static void emit_replacing(buf *t, const char *s, size_t n, ptb_action act)
{
    size_t i = 0;
    while (i < n) {
        size_t at = i;
        uint32_t cp = gr_u_decode(s, n, &i);
        switch (act) {
        case ACT_SOFTHYPHEN:
            if (cp == 0xAD) continue;
            break;
        case ACT_NBSP:
            if (cp == ' ') { buf_cp(t, 0xA0); continue; }
            break;
        case ACT_PHONE:
            if (cp == ' ') { buf_cp(t, 0xA0); continue; }
            /* fallthrough */
        case ACT_PARENS:
            if (cp == '(') { buf_str(t, "-LRB-"); continue; }
            if (cp == ')') { buf_str(t, "-RRB-"); continue; }
            break;
        case ACT_AMP:
            if (cp == '&' && n - at >= 5 && strncasecmp(s + at, "&amp;", 5) == 0) { buf_str(t, "&"); i = at + 5; continue; }
            break;
        case ACT_QUOTE_L:
        case ACT_QUOTE_R: {
            int left = act == ACT_QUOTE_L;
            if (cp == '\'') { buf_str(t, left ? "`" : "'"); continue; }
            if (cp == '"') { buf_str(t, left ? "``" : "''"); continue; }
            if (cp == '&' && n - at >= 6 && strncmp(s + at, "&apos;", 6) == 0) { buf_str(t, left ? "`" : "'"); i = at + 6; continue; }
            if (cp == '&' && n - at >= 6 && strncmp(s + at, "&quot;", 6) == 0) { buf_str(t, left ? "``" : "''"); i = at + 6; continue; }
            if (cp == 0x91 || cp == 0x2018 || cp == 0x201B || cp == 0x2039) { buf_str(t, "`"); continue; }
            if (cp == 0x92 || cp == 0x2019 || cp == 0x203A) { buf_str(t, "'"); continue; }
            if (cp == 0x93 || cp == 0x201C || cp == 0xAB) { buf_str(t, "``"); continue; }
            if (cp == 0x94 || cp == 0x201D || cp == 0xBB) { buf_str(t, "''"); continue; }
            break;
        }
        case ACT_FRAC2:
            if (cp == 0xBC) { buf_str(t, "1/4"); continue; }
            if (cp == 0xBD) { buf_str(t, "1/2"); continue; }
            if (cp == 0xBE) { buf_str(t, "3/4"); continue; }
            if (cp == 0x2153) { buf_str(t, "1/3"); continue; }
            if (cp == 0x2154) { buf_str(t, "2/3"); continue; }
            break;
        case ACT_CURRENCY:
            if (cp == 0xA2) { buf_str(t, "cents"); continue; }
            if (cp == 0xA3) { buf_str(t, "#"); continue; }
            if (cp == 0x80 || cp == 0xA4 || cp == 0x20A0 || cp == 0x20AC) { buf_str(t, "$"); continue; }
            break;
        default:
            break;
        }
        buf_put(t, s + at, i - at);
    }
    if (act == ACT_SOFTHYPHEN && t->n == 0) buf_str(t, "-");
}

/* The wrapper (ptbtokenizer.py) drops these tokens after lower-casing. */
static int is_dropped(const char *w)
{
    static const char *const P[] = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!",
                                    ",", ":", "-", "--", "...", ";"};
    for (size_t i = 0; i < sizeof P / sizeof P[0]; i++)
        if (strcmp(w, P[i]) == 0) return 1;
    return 0;
}

/* Adds one token (already normalised) to the current line: lower-case, drop, append. */
static int add_token(buf *line, const char *tok, size_t n)
{
    char *low = gr_u_lower(tok, n, 1);
    if (!low) return -1;
    if (!is_dropped(low)) {
        if (line->n) buf_put(line, " ", 1);
        buf_str(line, low);
    }
    free(low);
    return line->oom ? -1 : 0;
}

gr_status gr_ptb_tokenize(const char *const *texts, size_t n, char **out)
{
    pthread_once(&g_once, compile_all);
    for (size_t r = 0; r < NRULES; r++)
        if (!g_r1[r] || (RULES[r].r2 && !g_r2[r]))
            return gr_fail(GR_ERR_UNSUPPORTED, "PTB tokenizer: rule %zu does not compile (%s)", r, g_compile_error);
    for (size_t i = 0; i < n; i++) out[i] = NULL;

    /* The wrapper joins the texts with '\n' after turning each '\n' inside a text into a space; the
     * Java reader turns malformed UTF-8 into U+FFFD (so does this; PCRE2 then sees valid UTF-8). */
    buf doc = {0};
    int other_breaks = 0;
    for (size_t t = 0; t < n; t++) {
        if (t) buf_put(&doc, "\n", 1);
        const char *s = texts[t];
        size_t len = strlen(s), i = 0;
        while (i < len) {
            size_t at = i;
            uint32_t cp = gr_u_decode(s, len, &i);
            if (cp == '\n') { buf_put(&doc, " ", 1); continue; }
            if (cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x2028 || cp == 0x2029) other_breaks++;
            if ((cp >= 0xD800 && cp < 0xE000) || cp > 0x10FFFF) cp = 0xFFFD;
            if (cp == 0xFFFD) buf_cp(&doc, cp);
            else buf_put(&doc, s + at, i - at);
        }
    }
    if (doc.oom) { free(doc.p); return gr_fail(GR_ERR_NOMEM, "PTB tokenizer: out of memory"); }
    if (other_breaks)
        gr_log(GR_LOG_WARN, "PTB tokenizer: %d line-break character(s) other than \\n inside captions: as in "
                            "coco-caption, they shift the captions that follow onto the wrong entries", other_breaks);

    matcher m = {0};
    m.md = pcre2_match_data_create(128, NULL);
    m.wscount = 4096;
    m.ws = malloc(m.wscount * sizeof *m.ws);
    m.text = doc.p ? doc.p : "";
    m.len = doc.n;
    buf line = {0}, tok = {0};
    size_t nline = 0;
    gr_status st = GR_OK;
    if (!m.md || !m.ws) { st = gr_fail(GR_ERR_NOMEM, "PTB tokenizer: out of memory"); goto done; }

    size_t pos = 0;
    while (pos < m.len) {
        const char *s = m.text;
        /* Fast path: an ASCII letter run ended by space, tab, \n, \r or the end is one token (except
         * the split forms cannot/gonna/...). */
        if (is_ascii_alpha((unsigned char)s[pos])) {
            size_t e = pos;
            while (e < m.len && is_ascii_alpha((unsigned char)s[e])) e++;
            int ends = e == m.len || s[e] == ' ' || s[e] == '\t' || s[e] == '\n' || s[e] == '\r';
            size_t wl = e - pos;
            int special = (wl == 6 && strncasecmp(s + pos, "cannot", 6) == 0) ||
                          (wl == 5 && (strncasecmp(s + pos, "gonna", 5) == 0 || strncasecmp(s + pos, "gotta", 5) == 0 ||
                                       strncasecmp(s + pos, "lemme", 5) == 0 || strncasecmp(s + pos, "gimme", 5) == 0 ||
                                       strncasecmp(s + pos, "wanna", 5) == 0));
            if (ends && !special) {
                if (add_token(&line, s + pos, wl) < 0) { st = gr_fail(GR_ERR_NOMEM, "PTB tokenizer: out of memory"); goto done; }
                pos = e;
                continue;
            }
        }
        long best = 0;
        size_t best_rule = NRULES, best_tok = 0;
        for (size_t r = 0; r < NRULES; r++) {
            size_t tl = 0;
            long total = rule_match(&m, r, pos, &tl);
            if (total < 0) { st = gr_fail(GR_ERR_NOMEM, "PTB tokenizer: matcher failed"); goto done; }
            if (total > best) { best = total; best_rule = r; best_tok = tl; }
        }
        if (best_rule == NRULES || best_tok == 0) { /* untokenizable character: deleted, as the lexer's default does */
            gr_u_decode(s, m.len, &pos);
            continue;
        }
        const char *t = s + pos;
        size_t consumed = best_tok;
        tok.n = 0;
        ptb_action act = RULES[best_rule].act;
        switch (act) {
        case ACT_SKIP: break;
        case ACT_NEWLINE:
            out[nline] = line.p ? line.p : strdup("");
            if (!out[nline]) { st = gr_fail(GR_ERR_NOMEM, "PTB tokenizer: out of memory"); goto done; }
            memset(&line, 0, sizeof line);
            nline++;
            break;
        case ACT_KEEP3: consumed = 3; buf_put(&tok, t, 3); break;
        case ACT_KEEP2: consumed = 2; buf_put(&tok, t, 2); break;
        case ACT_CUT2: consumed = best_tok - 2; buf_put(&tok, t, consumed); break;
        case ACT_DASH: buf_str(&tok, "--"); break;
        case ACT_ACRONYM:
            if (best_tok == 2) { consumed = 1; buf_put(&tok, t, 1); }
            else { consumed = best_tok - 1; buf_put(&tok, t, best_tok); }
            break;
        case ACT_PERIOD_TOO: consumed = best_tok - 1; buf_put(&tok, t, best_tok); break;
        case ACT_LCB: buf_str(&tok, "-LCB-"); break;
        case ACT_RCB: buf_str(&tok, "-RCB-"); break;
        case ACT_LSB: buf_str(&tok, "-LSB-"); break;
        case ACT_RSB: buf_str(&tok, "-RSB-"); break;
        case ACT_LRB: buf_str(&tok, "-LRB-"); break;
        case ACT_RRB: buf_str(&tok, "-RRB-"); break;
        case ACT_HYPHENS:
            if (best_tok >= 3 && best_tok <= 4) buf_str(&tok, "--");
            else buf_put(&tok, t, best_tok);
            break;
        case ACT_ELLIPSIS: buf_str(&tok, "..."); break;
        case ACT_LT: buf_str(&tok, "<"); break;
        case ACT_GT: buf_str(&tok, ">"); break;
        default: emit_replacing(&tok, t, best_tok, act); break;
        }
        if (tok.oom) { st = gr_fail(GR_ERR_NOMEM, "PTB tokenizer: out of memory"); goto done; }
        if (act != ACT_SKIP && act != ACT_NEWLINE && add_token(&line, tok.p ? tok.p : "", tok.n) < 0) {
            st = gr_fail(GR_ERR_NOMEM, "PTB tokenizer: out of memory");
            goto done;
        }
        pos += consumed;
        if (nline == n) break; /* more lines than texts: the rest is dropped, as zip() does */
    }
    if (nline < n) {
        out[nline] = line.p ? line.p : strdup("");
        memset(&line, 0, sizeof line);
        if (!out[nline]) { st = gr_fail(GR_ERR_NOMEM, "PTB tokenizer: out of memory"); goto done; }
        nline++;
    }
    if (nline < n)
        st = gr_fail(GR_ERR_FORMAT, "PTB tokenizer: text %zu merges with the next one (a token spans the line break)",
                     nline - 1);
done:
    if (st != GR_OK)
        for (size_t i = 0; i < n; i++) { free(out[i]); out[i] = NULL; }
    free(line.p);
    free(tok.p);
    free(doc.p);
    free(m.ws);
    pcre2_match_data_free(m.md);
    return st;
}
