<?xml version="1.0" encoding="utf-8"?>
<!-- Shows an Atom or RSS feed opened in a browser as a page with a subscribe hint.
     Feed readers ignore it. Only text is copied out of the feed (no disable-output-escaping),
     so nothing in a feed can become markup here. -->
<xsl:stylesheet version="1.0"
  xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
  xmlns:atom="http://www.w3.org/2005/Atom"
  exclude-result-prefixes="atom">
  <xsl:output method="html" encoding="utf-8" indent="yes" doctype-system="about:legacy-compat"/>
  <xsl:variable name="title" select="/atom:feed/atom:title | /rss/channel/title"/>
  <xsl:variable name="self" select="/atom:feed/atom:link[@rel='self']/@href | /rss/channel/atom:link[@rel='self']/@href"/>
  <xsl:template match="/">
    <html>
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <meta name="referrer" content="no-referrer"/>
        <title><xsl:value-of select="$title"/></title>
        <link rel="stylesheet" href="/static/site.css"/>
      </head>
      <body>
        <h1><xsl:value-of select="$title"/></h1>
        <p class="hint">This is a web feed. Copy its address into your feed reader to subscribe:
          <code><xsl:value-of select="$self"/></code></p>
        <p><xsl:value-of select="/atom:feed/atom:subtitle | /rss/channel/description"/></p>
        <ul>
          <xsl:apply-templates select="/atom:feed/atom:entry | /rss/channel/item"/>
        </ul>
      </body>
    </html>
  </xsl:template>
  <xsl:template match="atom:entry">
    <li>
      <a href="{atom:link[@rel='alternate']/@href}"><xsl:value-of select="atom:title"/></a>
      <xsl:text> </xsl:text><time><xsl:value-of select="substring(atom:published, 1, 10)"/></time>
      <p><xsl:value-of select="atom:summary"/></p>
    </li>
  </xsl:template>
  <xsl:template match="item">
    <li>
      <a href="{link}"><xsl:value-of select="title"/></a>
      <xsl:text> </xsl:text><time><xsl:value-of select="pubDate"/></time>
      <p><xsl:value-of select="description"/></p>
    </li>
  </xsl:template>
</xsl:stylesheet>
