with elements as (
    {{ botpenguin_array_elements(ref('int_botpenguin__conversations'), 'conversation_id', 'tags') }}
),

tags as (
    select distinct conversation_id, {{ botpenguin_element_text('element') }} as tag
    from elements
)

select tags.conversation_id, conversations.bot_id, tags.tag
from tags
inner join {{ ref('int_botpenguin__conversations') }} as conversations
    on tags.conversation_id = conversations.conversation_id
where tags.tag is not null
