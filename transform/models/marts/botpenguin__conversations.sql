with channels as (
    select
        conversation_id,
        max(case when is_primary then channel end) as channel,
        {{ dbt.listagg('channel', "','", 'order by channel_position') }} as channels
    from {{ ref('int_botpenguin__conversation_channels') }}
    group by conversation_id
),

segment_elements as (
    {{ botpenguin_array_elements(ref('int_botpenguin__conversations'), 'conversation_id', 'segments') }}
),

segments as (
    select
        conversation_id,
        {{ dbt.listagg(botpenguin_element_text('element'), "','", 'order by position') }} as segments
    from segment_elements
    where {{ botpenguin_blank_to_null(botpenguin_element_text('element')) }} is not null
    group by conversation_id
)

select
    conversations.conversation_id,
    conversations.conversation_type,
    conversations.bot_id,
    conversations.customer_id,
    conversations.status,
    conversations.is_online,
    conversations.website_visits,
    conversations.agent_id,
    conversations.contact_name,
    conversations.contact_email,
    conversations.contact_phone,
    conversations.city,
    conversations.country,
    conversations.gender,
    conversations.last_message_at,
    conversations.last_message_by,
    conversations.last_message_text,
    conversations.last_seen_at,
    conversations.created_at,
    conversations.updated_at,
    coalesce(channels.channel, 'unknown') as channel,
    coalesce(channels.channels, 'unknown') as channels,
    conversations.is_subscriber,
    conversations.is_contact,
    conversations.is_imported,
    conversations.is_paid,
    conversations.has_ordered,
    conversations.is_live_chat_active,
    conversations.unread_messages,
    segments.segments,
    conversations.first_visited_url,
    conversations.last_visited_url
from {{ ref('int_botpenguin__conversations') }} as conversations
left join channels on conversations.conversation_id = channels.conversation_id
left join segments on conversations.conversation_id = segments.conversation_id
